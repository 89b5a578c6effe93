"""The variant script's command line: subcommands, options and the checks argparse cannot
express. Mistakes here exit with status 2 and a message naming the option, before
anything is deployed or registered."""

from __future__ import annotations

import argparse
from pathlib import Path

from croupier.router.rules import ID, LEVEL
from croupier.scripts.local_stack import DEFAULT_RUN_DIR
from croupier.scripts.targets import TARGETS
from croupier.scripts.variant_params import COLOR_NAMES, PARAMS_DIR
from croupier.variants.colors import HEX_COLOR
from croupier.variants.illustrations import ILLUSTRATIONS
from croupier.variants.params import COPY_STYLES

DESCRIPTION = ("Add, list, pause, resume, remove and promote an experiment's landing-page variants; "
               "launch a factorial experiment and add or remove the levels of its factors.")
DEFAULT_ADMIN_URL = "http://127.0.0.1:8000"

def identifier(text: str) -> str:
    if not ID.ok(text):
        raise argparse.ArgumentTypeError(f"{text!r}: an id {ID.message}")
    return text


def level_name(text: str) -> str:
    if not LEVEL.ok(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a factor or level name {LEVEL.message}")
    return text


def colour(text: str) -> str:
    if not HEX_COLOR.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a colour like '#1f7a5c'")
    return text.lower()


def image(text: str) -> str:
    if text not in ILLUSTRATIONS and not text.startswith("data:"):
        raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(sorted(ILLUSTRATIONS))} "
                                         f"or a data:image/...;base64,... URI")
    return text


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    # Accepted before or after the subcommand; a subcommand's copy only overrides when given.
    default = (lambda value: argparse.SUPPRESS) if in_subcommand else (lambda value: value)
    group = parser.add_argument_group("connection")
    group.add_argument("--admin-url", default=default(None),
                       help=f"the router's admin URL (CROUPIER_ADMIN_URL, else run/stack.json, else "
                            f"{DEFAULT_ADMIN_URL})")
    group.add_argument("--token", default=default(None),
                       help="admin bearer token (CROUPIER_ADMIN_TOKEN, else run/stack.json)")
    group.add_argument("--experiment", type=identifier, default=default("demo"), help="experiment id (default demo)")
    group.add_argument("--stack-dir", type=Path, default=default(DEFAULT_RUN_DIR),
                       help="the local stack's run directory, holding stack.json (default run/)")
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="croupier-variant", description=DESCRIPTION)
    _global_options(main, in_subcommand=False)
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _global_options(sub, in_subcommand=True)
        return sub

    command("list", "the experiment's variants and their live results (a factorial experiment's: per factor "
                    "and level)").add_argument("listed", nargs="?", type=identifier, metavar="EXPERIMENT",
                                               help="experiment id (or --experiment; default demo)")
    for name, help in (("pause", "stop sending new visitors to a variant (its visitors are reassigned)"),
                       ("resume", "send visitors to a paused variant again")):
        command(name, help).add_argument("variant", type=identifier)
    remove = command("remove", "remove a variant from the experiment and stop what this script started for it")
    remove.add_argument("variant", type=identifier)
    _target_options(remove)
    promote = command("promote", "send all traffic to one variant; the experiment ends")
    promote.add_argument("variant", type=identifier)
    promote.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_options(command("add", "deploy a new variant and add it to the experiment"))
    _create_options(command("create", "launch a factorial experiment from its declaration: start its page server, "
                                      "create the experiment, reload NGINX, set it running"))
    _level_options(command("add-level", "add a level to a factor of a factorial experiment"), adding=True)
    _level_options(command("remove-level", "remove a level (not the first, the control level) from a factor of "
                                           "a factorial experiment"), adding=False)
    return main


def _level_options(sub: argparse.ArgumentParser, *, adding: bool) -> None:
    sub.add_argument("experiment", type=identifier, help="the factorial experiment's id")
    sub.add_argument("factor", type=level_name, help="the factor's name")
    sub.add_argument("level", type=level_name, help="the level's name" + (" (new)" if adding else ""))
    if adding:
        sub.add_argument("--params", type=Path, required=True, metavar="FRAGMENT.json",
                         help="the level's params: a JSON object merged over the base variant's params")
    sub.add_argument("--declaration", type=Path, metavar="FILE",
                     help="the page server's declaration file (python -m croupier.variants --experiment FILE), "
                          "changed with the experiment: " + (
                              "it gets the level before any visitor is sent to it" if adding else
                              "it loses the level once no visitor is sent to it"))


def _target_options(sub: argparse.ArgumentParser, *, params_dir: bool = True) -> None:
    group = sub.add_argument_group("where it runs")
    group.add_argument("--target", choices=TARGETS, default="local", help="local process (default), docker or k8s")
    group.add_argument("--network", default="croupier", help="docker: the stack's network (default croupier)")
    group.add_argument("--namespace", default="croupier", help="k8s: namespace (default croupier)")
    group.add_argument("--kube-context", help="k8s: kubeconfig context (default: the current one)")
    if params_dir:
        group.add_argument("--params-dir", type=Path, default=PARAMS_DIR,
                           help="where generated params files go, one folder per experiment "
                                "(default variants/experiments)")


def _deploy_options(sub: argparse.ArgumentParser) -> None:
    run = sub.add_argument_group("deploying")
    run.add_argument("--port", type=int, help="local: port of the page server (default: a free one)")
    run.add_argument("--health-timeout", type=positive, default=30.0,
                     help="seconds to wait until it is healthy (default 30)")


def _create_options(create: argparse.ArgumentParser) -> None:
    create.add_argument("declaration", type=Path, metavar="DECLARATION.json",
                        help="the experiment's JSON, as the admin API takes it: one variant (the page server and "
                             "its base params), factors and constraints; its upstream is replaced by the deployed "
                             "page server's")
    create.add_argument("--image-ref", metavar="REGISTRY/IMAGE:TAG",
                        help="docker/k8s: run this existing image as the page server (default: build "
                             "variants/Dockerfile (docker), croupier-variant:latest (k8s))")
    _target_options(create, params_dir=False)
    _deploy_options(create)


def _add_options(add: argparse.ArgumentParser) -> None:
    add.add_argument("variant", type=identifier, help="the new variant's id")
    source = add.add_argument_group("what it serves (one of)")
    source.add_argument("--from-template", nargs="?", const="", default=None, metavar="BASE",
                        help="a page from a template: BASE is a variant id of the experiment or a params JSON "
                             "file (default: the control variant's page), changed by the options below")
    source.add_argument("--image-ref", metavar="REGISTRY/IMAGE:TAG",
                        help="docker/k8s: run this existing image (with --from-template: as the page server)")
    page = add.add_argument_group("page (with --from-template)")
    for flag, help in (("--headline", "the big headline"), ("--subheadline", "the line under it"),
                       ("--cta", "the call-to-action button"), ("--name", "a name for people (dashboard)"),
                       ("--brand", "brand name"), ("--badge", "small badge above the headline"),
                       ("--image-alt", "text alternative of the image")):
        page.add_argument(flag, help=help)
    page.add_argument("--copy", action="append", help="a bullet point or paragraph (repeatable; replaces the "
                                                      "template's)")
    page.add_argument("--copy-style", choices=COPY_STYLES)
    page.add_argument("--image", type=image, help=f"{', '.join(sorted(ILLUSTRATIONS))} or a data: URI")
    for name in COLOR_NAMES:
        page.add_argument(f"--{name}", type=colour, metavar="#RRGGBB", help=f"{name} colour")
    prior = add.add_argument_group("warm start (optional)")
    prior.add_argument("--prior-rate", type=positive, help="expected conversion rate, e.g. 0.05")
    prior.add_argument("--prior-weight", type=positive,
                       help="worth that many visitors, e.g. 200 (with --prior-from-model: at most; default 200)")
    prior.add_argument("--prior-from-model", action="store_true",
                       help="the rate the experiment's trained conversion model predicts for a new variant "
                            "(croupier-model train)")
    prior.add_argument("--prior-alpha", type=positive)
    prior.add_argument("--prior-beta", type=positive)
    _target_options(add)
    _deploy_options(add)


def check_add_usage(args: argparse.Namespace, fail) -> None:
    if args.from_template is None and not args.image_ref:
        fail("add needs --from-template (a page from a template) or --image-ref (an existing image)")
    if args.image_ref and args.target == "local":
        fail("--image-ref needs --target docker or k8s; the local target serves a --from-template page")
    page_flags = [f for f in ("headline", "subheadline", "cta", "name", "brand", "badge", "image_alt", "copy",
                              "copy_style", "image", *COLOR_NAMES) if getattr(args, f) is not None]
    if page_flags and args.from_template is None:
        fail(f"--{page_flags[0].replace('_', '-')} changes a template: add --from-template")
    by_model = args.prior_from_model
    by_counts = args.prior_alpha is not None or args.prior_beta is not None
    if by_model and (args.prior_rate is not None or by_counts):
        fail("--prior-from-model takes the rate from the model: not with --prior-rate or --prior-alpha/--prior-beta")
    by_rate = args.prior_rate is not None or (args.prior_weight is not None and not by_model)
    if by_rate and by_counts:
        fail("give the prior as --prior-rate/--prior-weight or as --prior-alpha/--prior-beta, not both")
    if by_rate and (args.prior_rate is None or args.prior_weight is None):
        fail("--prior-rate and --prior-weight go together")
    if by_rate and not args.prior_rate < 1:
        fail("--prior-rate must be between 0 and 1 (a conversion rate), e.g. 0.05")
    if by_counts and (args.prior_alpha is None or args.prior_beta is None):
        fail("--prior-alpha and --prior-beta go together")
    if (by_rate or by_counts) and not all(0.001 <= x <= 1e6 for x in prior(args)):
        alpha, beta = prior(args)
        fail(f"the prior works out to alpha={alpha:g}, beta={beta:g}; both must be between 0.001 and 1e6")
    check_port(args, fail)


def check_create_usage(args: argparse.Namespace, fail) -> None:
    if args.image_ref and args.target == "local":
        fail("--image-ref needs --target docker or k8s; the local target runs this project's page server")
    check_port(args, fail)


def check_port(args: argparse.Namespace, fail) -> None:
    if args.port is not None and not 0 < args.port < 65536:
        fail(f"--port must be 1-65535, got {args.port}")
    if args.port is not None and args.target != "local":
        fail("--port is for the local target")


def prior(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """The prior given on the command line (--prior-from-model asks the admin API instead)."""
    if args.prior_rate is not None:
        # rate r worth w visitors: Beta(r·w, (1-r)·w), as if w visitors had converted at r
        return args.prior_rate * args.prior_weight, (1 - args.prior_rate) * args.prior_weight
    return args.prior_alpha, args.prior_beta
