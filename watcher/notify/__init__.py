"""Notification: build messages apart from the transports that send them."""
