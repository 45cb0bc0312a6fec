"""Model config translation between Keras generations: the shared pieces.

``table`` (the paired up/down rules, each with the release that needs it), ``nodes`` (call
records both ways, nested-model node numbering), ``keras1`` (Keras 1.x spellings -> Keras 2).
The entry points are :mod:`ckptcompat.names.config_upgrade` and
:mod:`ckptcompat.names.config_downgrade`.
"""
