"""Deployments served on Ray Serve: the served app, the Ray head llmspec keeps, the control
process that talks to Serve.

- `app.py`: `ServedModel`, the OpenAI-compatible app (prompt template and retrieval applied
  server-side, outputs constrained token by token, bounded requests), plain Python and an ASGI
  app (Starlette), so it runs the same in a Serve replica, under uvicorn, or called directly.
- `deployment.py`: the Serve deployment wrapping it (imports Ray).
- `head.py`: the records under `.llmspec/serve/` and the Ray head process llmspec starts,
  reuses across applies and stops when nothing runs on it.
- `ctl.py`: `python -m llmspec.serve.ctl`, the short-lived process that connects to a head and
  deploys or deletes Serve applications (a process of its own, so an apply's own Ray never
  meets the head's).
"""
