"""Built-in connectors, one module per platform, each registered through the ``tributary.connectors`` entry points."""
