"""A test connector that only pulls: one stream per paginator, bearer-token authentication.

``X-Pullee-Wait: <seconds>`` on an answer asks for a pause before the next call.
"""
from __future__ import annotations

import requests
from marshmallow import fields

from hub.config import ConnectorSettingsSchema
from hub.connector import Connector, Stream
from hub.hookspecs import hookimpl
from hub.paginators import CursorAfter, LinkHeader, NextUrl, Offset, PageNumber


class PulleeSettings(ConnectorSettingsSchema):
    """``connectors.pullee``: the API token."""

    api_token = fields.String(required=True)


class Pullee(Connector):
    """Streams shaped like Shopify, WooCommerce, Stripe, Mailchimp, Klaviyo and Zendesk lists."""

    name = "pullee"
    settings_schema = PulleeSettings

    def streams(self, settings):
        return [
            Stream("customers", "customers.json", "id", LinkHeader(), "customers/update",
                   records_path="customers", cursor_field="updated_at",
                   cursor_param="updated_at_min", params={"limit": 2}),
            Stream("orders", "orders", "id", PageNumber(), "order.updated",
                   cursor_field="date_modified_gmt", cursor_param="modified_after",
                   params={"per_page": 2}),
            Stream("charges", "v1/charges", "id", CursorAfter(), "charge.updated",
                   records_path="data", cursor_field="created", cursor_param="created[gte]",
                   cursor_format="unix", params={"limit": 2}),
            Stream("members", "lists/L1/members", "id", Offset(limit=2), "profile",
                   records_path="members", cursor_field="last_changed",
                   cursor_param="since_last_changed"),
            Stream("profiles", "profiles", "id", NextUrl("links.next"), "profile.updated",
                   records_path="data"),
            Stream("tickets", "incremental/tickets.json", "id",
                   NextUrl("next_page", end_field="end_of_stream"), "ticket.updated",
                   records_path="tickets", cursor_field="updated_at", cursor_param="start_time",
                   cursor_format="unix"),
        ]

    def http_session(self, settings):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {settings['api_token']}"
        return session

    def throttle(self, response):
        return float(response.headers.get("X-Pullee-Wait", "0"))


@hookimpl
def register_connectors():
    return [Pullee()]
