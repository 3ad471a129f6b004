"""Tributary's core: configuration, store, inbox, workers, plugins. It never names a platform."""

__version__ = "0.1.0"


def create_app(config=None, **kwargs):
    """Build the web application; see :func:`hub.app.create_app`."""
    from hub.app import create_app as factory

    return factory(config, **kwargs)
