"""Secrets are never written into specs: `${env:NAME}` references them, read at call time.

>>> ENV_REF.fullmatch("${env:OPENAI_API_KEY}").group(1)
'OPENAI_API_KEY'
"""

from __future__ import annotations

import re

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
ANY_REF = re.compile(r"\$\{[^}]*\}?")
