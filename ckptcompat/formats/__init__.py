"""On-disk checkpoint formats, one module each, all with ``sniff``/``read``/``write``."""
