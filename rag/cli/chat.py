"""`rag chat`: an interactive chat in the terminal over the documents, with streamed answers, the
sources under each answer, and the conversation stored so that it can be resumed.

    rag chat                        a new conversation
    rag chat --conversation ID      resume one (its id is shown at the start and by /id)

In the chat: /sources N shows cited passage N in full, /new starts over, /id, /quit (or Ctrl-D).
"""

import typer

from .answers import show_citations
from .app import USAGE, app, console, fail, out, service

HELP = "/sources N: a cited passage in full · /new: a new conversation · /id · /quit"


@app.command()
def chat(
    conversation: str = typer.Option(None, "--conversation", help="Resume this stored conversation."),
    top_k: int = typer.Option(None, "--top-k", "-k", help="Passages to retrieve per question (default from config)."),
    where: str = typer.Option(None, "--where", "-w", help="Filter on metadata, e.g. \"filetype = 'pdf'\"."),
):
    """Chat with your documents: follow-up questions use the conversation so far."""
    from ..conversations import ConversationNotFound
    from ..llm.errors import LLMError
    from ..search import SearchError
    from .progress import PullBar

    rag = service(progress=PullBar(console))
    if conversation:
        try:
            for turn in rag.conversations.get(conversation, "local").turns:
                out.print(f"{'you' if turn.role == 'user' else 'rag'}> {turn.content}", markup=False, highlight=False)
        except ConversationNotFound:
            fail(f"no conversation {conversation!r}", USAGE)
    out.print(f"localrag chat · {HELP}", style="dim", highlight=False)
    answer = None
    while True:
        try:
            line = console.input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/new":
            conversation, answer = None, None
            out.print("new conversation", style="dim")
            continue
        if line == "/id":
            out.print(conversation or "(not stored yet: ask a question)", highlight=False)
            continue
        if line.startswith("/sources"):
            show_source(rag, answer, line.removeprefix("/sources").strip())
            continue
        if line.startswith("/"):
            out.print(HELP, style="dim", highlight=False)
            continue
        try:
            answer = ask(rag, line, top_k, where, conversation)
        except (SearchError, LLMError) as error:
            console.print(f"[red]error:[/red] {error}", highlight=False)
            continue
        conversation = answer.conversation_id
    rag.close()


def ask(rag, question: str, top_k, where, conversation):
    """Streams the answer to the terminal; returns it (stored in the conversation)."""
    out.print("rag> ", end="", highlight=False)
    answer = None
    for event in rag.stream(question, top_k=top_k, where=where, conversation=conversation, remember=True):
        if event.type == "token":
            out.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
        elif event.type == "error":
            console.print(f"\n[red]error:[/red] {event.error}", highlight=False)
        elif event.type == "answer":
            answer = event.answer
    out.print()
    show_citations(answer)
    if answer.query and answer.query != question:
        out.print(f"  searched: {answer.query}", style="dim", markup=False, highlight=False)
    return answer


def show_source(rag, answer, number: str):
    from ..search import PassageNotFound

    cited = {citation.number: citation for citation in answer.citations} if answer else {}
    if not number.isdigit() or int(number) not in cited:
        out.print(f"usage: /sources N, N one of {sorted(cited) or 'the numbers under an answer'}", style="dim", highlight=False)
        return
    citation = cited[int(number)]
    try:
        passage = rag.passage(citation.id)
    except PassageNotFound:
        out.print(f"[{number}] {citation.label}: no longer in the index", highlight=False, markup=False)
        return
    out.print(f"[{number}] {citation.label}", style="bold", highlight=False, markup=False)
    out.print(passage.text, markup=False, highlight=False)
