"""The run history and the local results hub (`llmspec runs`, `llmspec view`).

`history` records every apply in an SQLite database under `.llmspec/` (never in the lock):
which lock it produced, the git commit, timings, the plan, the spec files and the results
document. `queries` reads it back for the CLI and the hub's JSON API; `compare` puts two runs
side by side (metric deltas with paired intervals, spec and lock diffs); `server` is the
Starlette app behind `llmspec view`, with its page under `static/`. Only `server` imports the
web stack, and only `llmspec view` imports `server`.
"""
