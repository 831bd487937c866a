"""Repository commands: `python -m services.common.models list|show|promote|rollback`.

    python -m services.common.models list
    python -m services.common.models show fraud 3
    python -m services.common.models promote fraud 3
    python -m services.common.models rollback fraud

The repository is MLSD_MODEL_REPOSITORY unless --root says otherwise. A running model server
picks a change up within MLSD_MODEL_RELOAD_INTERVAL_S (1 s), without dropping a request.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from services.common.models.errors import ModelError
from services.common.models.repository import ModelRepository, default_actor
from services.common.models.settings import ModelSettings

logger = logging.getLogger(__name__)


def _list(repository: ModelRepository) -> None:
    models = repository.models()
    if not models:
        print(f"no models in {repository.root}")
    for name in models:
        production = repository.production_version(name)
        versions = ", ".join(f"{v}*" if v == production else str(v)
                             for v in repository.versions(name))
        print(f"{name:<16} production {production if production else '-':<4} versions {versions}")


def _show(repository: ModelRepository, name: str, version: int | None) -> None:
    version = version or repository.production_version(name) or repository.versions(name)[-1]
    print(repository.metadata(name, version).to_json(), end="")
    for entry in repository.history(name):
        print(f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.action:<8} -> v{entry.version} "
              f"(was {entry.previous or '-'}) by {entry.actor}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.common.models",
                                     description="list, show, promote and roll back models")
    parser.add_argument("--root", type=Path, help="repository root (MLSD_MODEL_REPOSITORY)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="models, versions, production version (*)")
    show = commands.add_parser("show", help="a version's metadata and the promotion history")
    show.add_argument("name")
    show.add_argument("version", type=int, nargs="?")
    promote = commands.add_parser("promote", help="make a version the production version")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    rollback = commands.add_parser("rollback", help="back to the previous production version")
    rollback.add_argument("name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    repository = ModelRepository(args.root or ModelSettings().model_repository)
    try:
        if args.command == "list":
            _list(repository)
        elif args.command == "show":
            _show(repository, args.name, args.version)
        elif args.command == "promote":
            previous = repository.production_version(args.name)
            repository.promote(args.name, args.version, actor=f"cli:{default_actor()}")
            print(f"{args.name}: production v{previous} -> v{args.version}")
        else:
            back = repository.rollback(args.name, actor=f"cli:{default_actor()}")
            print(f"{args.name}: rolled back to v{back}")
    except ModelError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
