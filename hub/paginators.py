"""How a pulled stream walks from one page to the next: the closed set of paginators.

A paginator is a small immutable value declared on a :class:`hub.connector.Stream`. It
never holds run state: given the request that fetched a page and what came back, it
names the next request (a URL and its query parameters) or None on the last page. That
request is what ``hub sync`` stores as the stream's ``next`` token, so a run cut short
resumes exactly where its last stored page ended.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

if TYPE_CHECKING:  # pragma: no cover
    import requests

#: the next page to fetch: absolute URL and query parameters
Request = tuple[str, dict[str, Any]]


def field_at(document: Any, path: str) -> Any:
    """The value at dotted ``path`` in parsed JSON (``""``: the document), or None if absent."""
    value = document
    for part in path.split(".") if path else ():
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class Paginator:
    """Base of the closed set below; a stream names exactly one of them."""

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        """The query parameters of the first page: the stream's own plus the paginator's."""
        return dict(params)

    def next(self, url: str, params: dict[str, Any], response: requests.Response, body: Any,
             records: list) -> Request | None:
        """The request for the page after this one, or None when this page was the last."""
        raise NotImplementedError


@dataclass(frozen=True)
class LinkHeader(Paginator):
    """RFC 8288 (ex-5988) ``Link: <url>; rel="next"`` (Shopify ``page_info``, GitHub).

    The next URL carries every parameter the API needs, so later pages send nothing
    else: Shopify rejects a ``page_info`` request that repeats the first page's filters.
    """

    def next(self, url, params, response, body, records):
        link = response.links.get("next", {}).get("url")
        return (urljoin(response.url, link), {}) if link else None


@dataclass(frozen=True)
class PageNumber(Paginator):
    """``page=N`` from ``start``; stops on an empty page or at the total page count.

    WooCommerce sends the count in the ``X-WP-TotalPages`` header, PayPal's Transaction Search
    in the body (``total_pages_field="total_pages"``); without either only an empty page ends.
    """

    param: str = "page"
    start: int = 1
    total_pages_header: str | None = "X-WP-TotalPages"
    total_pages_field: str | None = None

    def first(self, params):
        return {**params, self.param: self.start}

    def next(self, url, params, response, body, records):
        if not records:
            return None
        page = int(params.get(self.param, self.start))
        total = response.headers.get(self.total_pages_header) if self.total_pages_header else None
        if self.total_pages_field:
            total = str(field_at(body, self.total_pages_field))
        if total is not None and total.strip().isdigit() and page >= int(total):
            return None
        return url, {**params, self.param: page + 1}


@dataclass(frozen=True)
class CursorAfter(Paginator):
    """Stripe lists: ``starting_after=<id of the last record>`` while ``has_more`` is true."""

    param: str = "starting_after"
    has_more_field: str = "has_more"
    id_field: str = "id"

    def next(self, url, params, response, body, records):
        if not records or field_at(body, self.has_more_field) is not True:
            return None
        return url, {**params, self.param: field_at(records[-1], self.id_field)}


@dataclass(frozen=True)
class Offset(Paginator):
    """``offset``/``count`` windows of ``limit`` records until ``total_items`` (Mailchimp)."""

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "count"
    total_field: str = "total_items"

    def first(self, params):
        return {**params, self.offset_param: 0, self.limit_param: self.limit}

    def next(self, url, params, response, body, records):
        offset = int(params.get(self.offset_param, 0)) + self.limit
        total = field_at(body, self.total_field)
        if not records or (isinstance(total, int) and offset >= total):
            return None
        return url, {**params, self.offset_param: offset, self.limit_param: self.limit}


@dataclass(frozen=True)
class NextUrl(Paginator):
    """A next-page URL inside the body at ``path``; stops on null or ``end_field`` true.

    JSON:API ``links.next`` (Klaviyo); ``next_page`` or ``after_url`` with
    ``end_field="end_of_stream"`` for Zendesk incremental exports.
    """

    path: str = "links.next"
    end_field: str | None = None

    def next(self, url, params, response, body, records):
        link = field_at(body, self.path)
        if not link or (self.end_field and field_at(body, self.end_field) is True):
            return None
        return urljoin(response.url, link), {}


#: the closed set a :class:`hub.connector.Stream` may name
PAGINATORS: tuple[type[Paginator], ...] = (LinkHeader, PageNumber, CursorAfter, Offset, NextUrl)
