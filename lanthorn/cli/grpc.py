"""`lanthorn grpc`: serve the gRPC API (inference/grpc_service.py)."""


def cmd_grpc(args) -> None:
    import asyncio

    from django.conf import settings

    from inference.grpc_service import serve

    asyncio.run(serve(host=args.host or settings.LANTHORN_GRPC_HOST, port=args.port or settings.LANTHORN_GRPC_PORT))


def register(sub) -> None:
    g = sub.add_parser("grpc", help="serve the gRPC API (default port: LANTHORN_GRPC_PORT, 50051)")
    g.add_argument("--host", help="default: LANTHORN_GRPC_HOST, else LANTHORN_HOST, else 127.0.0.1")
    g.add_argument("--port", type=int, help="default: LANTHORN_GRPC_PORT")
    g.set_defaults(func=cmd_grpc)
