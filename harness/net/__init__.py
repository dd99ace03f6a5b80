"""Network edges: the Transport seam (base) and its implementations (h1client: lean HTTP/1.1, aiotransport: aiohttp),
the choice between them (transports), the blocking operator client (blocking), wire encoding and headers (wire),
failure classification (failures) and TLS (tls).

Edge. Every connection and session is created and closed inside the one event loop of the process that owns it."""
