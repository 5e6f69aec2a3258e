"""The dashboard's pages: server-rendered views kept live by the WebSocket stream (static/rrr)."""
