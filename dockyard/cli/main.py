"""`dockyard`: entry point, global options, and the command table.

Start-up is on the path of every invocation, so only the chosen command's module is imported and
only that command's argparse parser is built. Global options are read by hand before the
command word, the way docker's CLI stops at the first non-flag argument.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import NoReturn

from dockyard.cli.context import PROG, VERSION, Context, StatusError

# command -> (module under dockyard.cli.commands, function stem, short help)
TOP: dict[str, tuple[str, str, str]] = {
    "run": ("container", "run", "Create and run a new container from an image"),
    "create": ("container", "create", "Create a new container"),
    "start": ("container", "start", "Start one or more stopped containers"),
    "stop": ("container", "stop", "Stop one or more running containers"),
    "kill": ("container", "kill", "Kill one or more running containers"),
    "restart": ("container", "restart", "Restart one or more containers"),
    "pause": ("container", "pause", "Pause all processes within one or more containers"),
    "unpause": ("container", "unpause", "Unpause all processes within one or more containers"),
    "wait": ("container", "wait", "Block until one or more containers stop, then print their exit codes"),
    "rm": ("container", "rm", "Remove one or more containers"),
    "rename": ("container", "rename", "Rename a container"),
    "ps": ("container", "ps", "List containers"),
    "logs": ("container", "logs", "Fetch the logs of a container"),
    "exec": ("container", "exec_", "Execute a command in a running container"),
    "stats": ("container", "stats", "Display a live stream of container(s) resource usage statistics"),
    "top": ("container", "top", "Display the running processes of a container"),
    "diff": ("container", "diff", "Inspect changes to files or directories on a container's filesystem"),
    "update": ("container", "update", "Update configuration of one or more containers"),
    "port": ("container", "port", "List port mappings or a specific mapping for the container"),
    "attach": ("container", "attach", "Attach local standard input, output, and error streams to a running container"),
    "commit": ("container", "commit", "Create a new image from a container's changes"),
    "export": ("container", "export", "Export a container's filesystem as a tar archive"),
    "cp": ("cp", "cp", "Copy files/folders between a container and the local filesystem"),
    "inspect": ("inspect", "inspect", "Return low-level information on Docker objects"),
    "build": ("build", "build", "Build an image from a Dockerfile"),
    "images": ("image", "ls", "List images"),
    "rmi": ("image", "rm", "Remove one or more images"),
    "tag": ("image", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "import": ("image", "import_", "Import the contents from a tarball to create a filesystem image"),
    "load": ("image", "load", "Load an image from a tar archive or STDIN"),
    "save": ("image", "save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "history": ("image", "history", "Show the history of an image"),
    "pull": ("image", "pull", "Download an image from a registry"),
    "push": ("registry", "push", "Upload an image to a registry"),
    "login": ("registry", "login", "Authenticate to a registry"),
    "logout": ("registry", "logout", "Log out from a registry"),
    "search": ("registry", "search", "Search Docker Hub for images"),
    "version": ("system", "version", "Show the Docker version information"),
    "info": ("system", "info", "Display system-wide information"),
    "events": ("system", "events", "Get real time events from the server"),
}

MANAGEMENT: dict[str, tuple[str, dict[str, tuple[str, str, str]]]] = {
    "container": ("Manage containers", {
        "ls": ("container", "ps", "List containers"),
        "list": ("container", "ps", "List containers"),
        "ps": ("container", "ps", "List containers"),
        "inspect": ("container", "inspect", "Display detailed information on one or more containers"),
        "prune": ("container", "prune", "Remove all stopped containers"),
        **{k: v for k, v in TOP.items() if v[0] in ("container", "cp")},
    }),
    "image": ("Manage images", {
        "build": ("build", "build", "Build an image from a Dockerfile"),
        "ls": ("image", "ls", "List images"),
        "list": ("image", "ls", "List images"),
        "inspect": ("image", "inspect", "Display detailed information on one or more images"),
        "rm": ("image", "rm", "Remove one or more images"),
        "prune": ("image", "prune", "Remove unused images"),
        "history": ("image", "history", "Show the history of an image"),
        "import": ("image", "import_", "Import the contents from a tarball to create a filesystem image"),
        "load": ("image", "load", "Load an image from a tar archive or STDIN"),
        "save": ("image", "save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
        "tag": ("image", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
        "pull": ("image", "pull", "Download an image from a registry"),
        "push": ("registry", "push", "Upload an image to a registry"),
    }),
    "system": ("Manage Docker", {
        "df": ("system", "df", "Show docker disk usage"),
        "events": ("system", "events", "Get real time events from the server"),
        "info": ("system", "info", "Display system-wide information"),
        "prune": ("system", "prune", "Remove unused data"),
    }),
    "volume": ("Manage volumes", {
        "create": ("volume", "create", "Create a volume"),
        "ls": ("volume", "ls", "List volumes"),
        "list": ("volume", "ls", "List volumes"),
        "inspect": ("volume", "inspect", "Display detailed information on one or more volumes"),
        "rm": ("volume", "rm", "Remove one or more volumes"),
        "remove": ("volume", "rm", "Remove one or more volumes"),
        "prune": ("volume", "prune", "Remove unused local volumes"),
    }),
    "manifest": ("Manage Docker image manifests and manifest lists", {
        "inspect": ("manifest", "inspect", "Display an image manifest, or manifest list"),
    }),
    "network": ("Manage networks", {
        "connect": ("network", "connect", "Connect a container to a network"),
        "create": ("network", "create", "Create a network"),
        "disconnect": ("network", "disconnect", "Disconnect a container from a network"),
        "inspect": ("network", "inspect", "Display detailed information on one or more networks"),
        "ls": ("network", "ls", "List networks"),
        "list": ("network", "ls", "List networks"),
        "prune": ("network", "prune", "Remove all unused networks"),
        "rm": ("network", "rm", "Remove one or more networks"),
        "remove": ("network", "rm", "Remove one or more networks"),
    }),
}

_GLOBAL_VALUE_FLAGS = {"-H", "--host", "--tlscacert", "--tlscert", "--tlskey", "-l", "--log-level",
                       "--config", "-c", "--context"}
_GLOBAL_BOOL_FLAGS = {"--tls", "--tlsverify", "-D", "--debug"}


def _usage() -> str:
    lines = [f"\nUsage:  {PROG} [OPTIONS] COMMAND\n", "A self-sufficient runtime for containers\n",
             "Common Commands:"]
    for name, (_, _, short) in TOP.items():
        lines.append(f"  {name:<11} {short}")
    lines.append("\nManagement Commands:")
    for name, (short, _) in MANAGEMENT.items():
        lines.append(f"  {name:<11} {short}")
    lines += ["\nGlobal Options:",
              "  -H, --host string        Daemon socket to connect to",
              "      --tls                Use TLS; implied by --tlsverify",
              "      --tlscacert string   Trust certs signed only by this CA",
              "      --tlscert string     Path to TLS certificate file",
              "      --tlskey string      Path to TLS key file",
              "      --tlsverify          Use TLS and verify the remote",
              "  -v, --version            Print version information and quit",
              f"\nRun '{PROG} COMMAND --help' for more information on a command.\n"]
    return "\n".join(lines)


def _management_usage(group: str) -> str:
    short, table = MANAGEMENT[group]
    lines = [f"\nUsage:  {PROG} {group} COMMAND\n", f"{short}\n", "Commands:"]
    for name, (_, _, sub_short) in table.items():
        lines.append(f"  {name:<11} {sub_short}")
    lines.append(f"\nRun '{PROG} {group} COMMAND --help' for more information on a command.\n")
    return "\n".join(lines)


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.exit(code)


def parse_global(argv: list[str]) -> tuple[str | None, dict[str, object], list[str]]:
    host: str | None = None
    tls: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    _fail(f"flag needs an argument: {name}\nSee '{PROG} --help'.", 125)
                value = argv[i]
            if name in ("-H", "--host"):
                host = value
            elif name.startswith("--tls"):
                tls[name[2:]] = value
        elif name in _GLOBAL_BOOL_FLAGS:
            if name.startswith("--tls"):
                tls[name[2:]] = value.lower() not in ("false", "0") if eq else True
        elif arg in ("-v", "--version"):
            print(f"Dockyard version {VERSION}")
            sys.exit(0)
        elif arg in ("-h", "--help"):
            print(_usage())
            sys.exit(0)
        else:
            _fail(f"unknown flag: {name}\nSee '{PROG} --help'.", 125)
        i += 1
    return host, tls, argv[i:]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    host, tls, rest = parse_global(argv)
    if not rest:
        print(_usage())
        return
    word, args = rest[0], rest[1:]
    if word == "registry":
        # the hub is its own program (aiohttp, storage): exec it so this CLI's start-up stays stdlib-only
        os.execv(sys.executable, [sys.executable, "-m", "dockyard.cmd.registry", *args])
    if word in MANAGEMENT:
        table = MANAGEMENT[word][1]
        if not args or args[0] in ("-h", "--help"):
            print(_management_usage(word))
            return
        if args[0] not in table:
            _fail(f"{PROG}: unknown command: {PROG} {word} {args[0]}\n\nUsage:  {PROG} {word}\n\n"
                  f"Run '{PROG} {word} --help' for more information", 1)
        entry = table[args[0]]
        name = f"{word} {args[0]}"
        args = args[1:]
    elif word in TOP:
        entry = TOP[word]
        name = word
    else:
        _fail(f"{PROG}: unknown command: {PROG} {word}\n\nRun '{PROG} --help' for more information", 1)
    sys.exit(run_command(entry, name, args, host, tls))


def run_command(entry: tuple[str, str, str], name: str, args: list[str], host: str | None,
                tls: dict[str, object]) -> int:
    import importlib

    from dockyard.cli.client import APIError, ConnectError
    from dockyard.cli.parser import ParseExit, make_parser
    from dockyard.cli.template import TemplateError

    module_name, stem, short = entry
    module = importlib.import_module(f"dockyard.cli.commands.{module_name}")
    ctx = Context(name, host, tls)
    parser = make_parser(f"{PROG} {name}", short)
    getattr(module, f"setup_{stem}")(parser)
    try:
        opts = parser.parse_args(args)
        return getattr(module, f"cmd_{stem}")(ctx, opts) or 0
    except ParseExit as e:
        if e.message:
            (sys.stdout if e.code == 0 else sys.stderr).write(e.message)
        return e.code
    except StatusError as e:
        if e.message:
            sys.stderr.write(e.message.rstrip("\n") + "\n")
        return e.code
    except (APIError, ConnectError) as e:
        sys.stderr.write(f"{e}\n")
        return 1
    except TemplateError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `dockyard ps | head`: the reader left; say nothing, like docker
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
