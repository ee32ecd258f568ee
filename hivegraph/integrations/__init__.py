"""Adapters that let other frameworks use hivegraph memory (LangGraph's `BaseStore`: `langgraph_store`)."""
