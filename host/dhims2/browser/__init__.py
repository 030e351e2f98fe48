"""The native messaging host the extension talks to: framing, the protocol and its schema, one
handler per message type, and the background sender."""
