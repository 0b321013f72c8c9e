"""Talking to buyers and sources over HTTP: building a request from a target's settings,
sending it with aiohttp, and reading the answer the way LeadConduit does. Used by HTTP
delivery, by feedback forwarding and by the auction's pings."""
