"""One module per case type (stack, coldplate, compact, calibrate, rack,
facility) and the cold-plate geometry and pin-fin friction they share. The
registry (:mod:`aidc_thermo.registry`) maps a case file's ``type`` to its module."""
