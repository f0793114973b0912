"""The hand: MANO through smplx (the built-in MANO-format hand or the real files), joints and limits."""
