"""Remote calls over LiveKit: where each conversation is, and who it talks with."""
