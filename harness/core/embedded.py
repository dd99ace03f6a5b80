"""The embedded VTN's defaults, in one place: its client ids, secrets, the variables that override them, its dialect.

Pure constants. They apply only to the embedded VTN: a run against another target must name its real secrets.
"""

from __future__ import annotations

BL_CLIENT_ID = "bl"  # the business-logic (operator) client
BL_SECRET = "bl-secret"
VEN_CLIENT_PREFIX = "ven-"  # a VEN's client id is this prefix and its name
VEN_SECRET = "ven-secret"
BL_SECRET_ENV = "HARNESS_BL_SECRET"  # the environment variables that hold the secrets (never a profile)
VEN_SECRET_ENV = "HARNESS_VEN_SECRET"
PROVISIONING_SECRET_ENV = "HARNESS_PROVISIONING_SECRET"
VEN_TOKEN = "ven-token"  # ven_token_env mode: the bearer token the embedded VTN issued beforehand
PREISSUED_CLIENT = "ven-preissued"  # ... and the client it knows that token by
DIALECT = "openadr-3.0.1"  # what the embedded VTN speaks by default
DIALECT_31 = "openadr-3.1.0"  # ... and beside it, under its own base path, with MQTT notifications through a broker
DIALECTS = (DIALECT, DIALECT_31)
