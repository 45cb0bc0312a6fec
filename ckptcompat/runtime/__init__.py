"""Live framework flavours, one module each: ``detect``, ``capture``, ``apply``."""
