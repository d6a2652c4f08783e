"""Voice calls between a client's base unit and an operator (docs/voice.md)."""
