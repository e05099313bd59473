"""``kbroker users list|add|remove`` (kafka-configs --entity-type users for SCRAM), through
DescribeUserScramCredentials / AlterUserScramCredentials, so it manages the SCRAM users of
any Kafka-compatible broker.

    kbroker users add bob --mechanism SCRAM-SHA-256 --iterations 8192   (password from stdin)
    kbroker users add bob --password bob-secret        (SCRAM-SHA-512 by default, 4096 iterations)
    kbroker users list [--user bob] [--json]
    kbroker users remove bob --mechanism SCRAM-SHA-512

The password is salted on this side (KIP-554): the broker only ever sees the salted form.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from kbroker.tools.common import ToolError, admin_client, kafka, print_json, print_table, wait

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``kbroker users``."""
    users = commands.add_parser("users", help="list, add and remove SCRAM users")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", parents=[common], help="users and their SCRAM mechanisms")
    p.add_argument("--user", action="append", default=[], metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_list)
    p = actions.add_parser("add", parents=[common], help="set a user's SCRAM password")
    p.add_argument("user", metavar="NAME")
    p.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-512")
    p.add_argument("--iterations", type=int, default=4096, help="at least 4096 (default)")
    p.add_argument(
        "--password", help="the password (default: asked on a terminal, else read from stdin)"
    )
    p.set_defaults(run=run_add)
    p = actions.add_parser("remove", parents=[common], help="remove a user's SCRAM credential")
    p.add_argument("user", metavar="NAME")
    p.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-512")
    p.set_defaults(run=run_remove)


def _mechanism(name: str) -> Any:
    return getattr(kafka().admin.ScramMechanism, name.replace("-", "_"))


def run_list(args: argparse.Namespace) -> int:
    """Print each user's SCRAM mechanisms and iteration counts."""
    admin = admin_client(args)
    if args.user:
        futures = admin.describe_user_scram_credentials(
            args.user, request_timeout=args.request_timeout
        )
        described = {user: wait(future, args) for user, future in futures.items()}
    else:
        described = wait(
            admin.describe_user_scram_credentials(request_timeout=args.request_timeout), args
        )
    rows = [
        (user, info.mechanism.name.replace("_", "-"), info.iterations)
        for user, description in sorted(described.items())
        for info in description.scram_credential_infos
    ]
    if args.json:
        print_json([{"user": u, "mechanism": m, "iterations": i} for u, m, i in rows])
    else:
        print_table(("USER", "MECHANISM", "ITERATIONS"), rows)
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {args.user}: ")
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise ToolError("no password given (--password, or one line on stdin)")
    return line


def run_add(args: argparse.Namespace) -> int:
    """Create or replace a user's credential for one mechanism."""
    a = kafka().admin
    password = _password(args)
    upsertion = a.UserScramCredentialUpsertion(
        args.user,
        a.ScramCredentialInfo(_mechanism(args.mechanism), args.iterations),
        password.encode(),
    )
    admin = admin_client(args)
    futures = admin.alter_user_scram_credentials([upsertion], request_timeout=args.request_timeout)
    for future in futures.values():
        wait(future, args)
    print(f"set {args.mechanism} credential of user {args.user}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Remove a user's credential for one mechanism."""
    a = kafka().admin
    admin = admin_client(args)
    deletion = a.UserScramCredentialDeletion(args.user, _mechanism(args.mechanism))
    futures = admin.alter_user_scram_credentials([deletion], request_timeout=args.request_timeout)
    for future in futures.values():
        wait(future, args)
    print(f"removed {args.mechanism} credential of user {args.user}")
    return 0
