"""Network edges: the Transport seam and its two implementations (lean HTTP/1.1, aiohttp), wire encoding, TLS, OS limits.

Edge. Every connection and session is created and closed inside the one event loop of the process that owns it."""
