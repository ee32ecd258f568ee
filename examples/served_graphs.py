"""The example teams as graphs for LangGraph's own server; `langgraph.json` at the repository root names them.

    pip install -e ".[langgraph-server]"
    LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=true LANGSMITH_TRACING=false \\
        langgraph dev --no-browser --n-jobs-per-worker 2   # from the repository root

Each graph is exported without a checkpointer or store of its own: the server
compiles it with hivegraph's checkpointer and memory (`checkpointer.path` and
`store.path` in `langgraph.json`), opened from hivegraph's settings
(`HIVEGRAPH_CONFIG`, `hivegraph.yaml`, `HIVEGRAPH_*`). A thread is a hivegraph
run; a run's `context` may set `user_id` and `team_id`.
"""

from __future__ import annotations

from personal_assistant import SCOPE as ASSISTANT_SCOPE  # examples/ is on sys.path (langgraph.json dependencies)
from personal_assistant import assistant
from quickstart import SCOPE as QUICKSTART_SCOPE
from quickstart import team_members

from hivegraph.graphs.patterns import pipeline
from hivegraph.server import served_graph

quickstart = served_graph(pipeline(team_members()), team_members(), scope=QUICKSTART_SCOPE)
personal_assistant = served_graph(pipeline([assistant()]), [assistant()], scope=ASSISTANT_SCOPE)
