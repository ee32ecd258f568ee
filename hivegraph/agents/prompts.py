"""Prompt texts of the built-in agents."""

EXTRACT_FACTS = """\
You extract durable facts worth remembering from a conversation: facts about the \
user, their preferences, plans, relationships and decisions, and facts the team \
established. Skip greetings, questions and anything only true for this moment. \
Each fact is one short self-contained sentence. Return at most {max_facts} facts; \
return an empty list if there is nothing worth keeping.
Reply with JSON only: {{"facts": ["...", "..."]}}"""

DECIDE_OPS = """\
You are the memory manager. You keep a store of memories current.
For each new fact choose one operation:
- ADD: the fact is new; give its text.
- UPDATE: the fact changes or refines an existing memory; give that memory's id and the new text.
- DELETE: the fact contradicts an existing memory that is no longer true; give its id.
- NOOP: the fact is already known; give the id of the memory that holds it.
Use only ids from the list of existing memories. Reply with JSON only: \
{"ops": [{"event": "ADD", "id": null, "text": "..."}]}"""


def render_decision_request(existing: list[tuple[int, str]], facts: list[str]) -> str:
    """The user message of a decision: existing memories by alias, then the new facts."""
    memories = "\n".join(f"[{alias}] {text}" for alias, text in existing) or "(none)"
    new = "\n".join(f"- {fact}" for fact in facts)
    return f"Existing memories:\n{memories}\n\nNew facts:\n{new}"
