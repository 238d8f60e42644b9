"""`lanthorn shell`: a terminal chat, one more door onto the request session."""

from lanthorn.cli.base import user as _user


def cmd_shell(args) -> None:
    import asyncio

    from inference.session import Failed, RequestSession, Text
    from registry import services

    model = args.model or services.DEFAULT_MODEL_NAME
    services.get_version(name=model)
    user = _user(args.user)
    history: list[dict] = []
    print(f"Talking to {model}. Ctrl-D or /bye leaves, /reset forgets the conversation.")

    async def ask(text: str) -> str:
        session = RequestSession(interface="cli.shell", user=user)
        await session.start({"model": model, "messages": [*history, {"role": "user", "content": text}],
                             "stream": True})
        parts = []
        try:
            async for event in session.events():
                if isinstance(event, Text):
                    parts.append(event.text)
                    print(event.text, end="", flush=True)
                elif isinstance(event, Failed):
                    raise event.error
        finally:
            await session.cancel()  # Ctrl-C: the worker stops too (a no-op once the answer is done)
        print()
        return "".join(parts)

    while True:
        try:
            text = input(">>> ")
        except EOFError:
            print()
            return
        if text.strip() in ("/bye", "/exit", "/quit"):
            return
        if text.strip() == "/reset":
            history.clear()
            continue
        if not text.strip():
            continue
        answer = asyncio.run(ask(text))
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]


def register(sub) -> None:
    shell = sub.add_parser("shell", help="chat with a model, streamed through a worker")
    shell.add_argument("model", nargs="?", help="default: the default model")
    shell.add_argument("--user", help="whose usage the chat counts as (default: the first admin)")
    shell.set_defaults(func=cmd_shell)
