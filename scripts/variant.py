"""croupier-variant: add, list, pause, resume, remove and promote an experiment's variants;
launch a factorial experiment and add or remove the levels of its factors.

    python -m croupier.scripts.variant list
    python -m croupier.scripts.variant add spring --from-template --headline "Spring into savings" \\
        --cta "Start saving" --primary '#2a9d8f' --prior-rate 0.05 --prior-weight 200
    python -m croupier.scripts.variant add summer --from-template --headline "Summer deals" --prior-from-model
    python -m croupier.scripts.variant pause spring
    python -m croupier.scripts.variant promote b --yes
    python -m croupier.scripts.variant create variants/examples/spring-mvt.json
    python -m croupier.scripts.variant add-level spring cta sign-up --params sign-up.json --declaration spring.json
    python -m croupier.scripts.variant remove-level spring cta sign-up --declaration spring.json
    python -m croupier.scripts.variant list spring

Everything goes through the admin API, never Redis. The admin URL and token come
from --admin-url/--token, CROUPIER_ADMIN_URL/CROUPIER_ADMIN_TOKEN, or the running
local stack's run/stack.json. Exit codes: 0 done, 1 the input (a params or
declaration file) was refused, or the API or a deploy step failed (the API's
message is shown), 2 the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from croupier.router.experiments import InvalidExperiment
from croupier.scripts.admin_client import AdminClient, AdminError
from croupier.scripts.local_stack import RunningStack, StackNotFound, find_stack, load_stack
from croupier.scripts.processes import MissingBinary, StartError
from croupier.scripts.progress import Progress
from croupier.scripts.targets import DeployError, Target, VariantSpec
from croupier.scripts.variant_add import NewVariant, add_variant
from croupier.scripts.variant_args import DEFAULT_ADMIN_URL, check_add_usage, check_create_usage, parser, prior
from croupier.scripts.variant_create import create_experiment, read_declaration
from croupier.scripts.variant_levels import LevelChange, LevelFailed, change_level, load_fragment
from croupier.scripts.variant_params import PageChanges, build_params, load_template, params_path
from croupier.scripts.variant_table import stats_table
from croupier.variants.params import InvalidParams

DEFAULT_MODEL_PRIOR_WEIGHT = 200.0
FAILURES = (AdminError, DeployError, StartError, MissingBinary, InvalidParams, InvalidExperiment, LevelFailed,
            StackNotFound, OSError)


class Failed(RuntimeError):
    """A command that cannot go on; the message says why."""


class Context:
    """What every command needs: the options, the admin API, progress output and the local stack."""

    def __init__(self, args: argparse.Namespace, environ: dict[str, str]) -> None:
        self.args = args
        self.stack = find_stack(args.stack_dir)
        admin_url = (args.admin_url or environ.get("CROUPIER_ADMIN_URL")
                     or (self.stack.admin_url if self.stack else DEFAULT_ADMIN_URL))
        token = args.token or environ.get("CROUPIER_ADMIN_TOKEN") or (self.stack.admin_token if self.stack else "")
        self.admin = AdminClient(admin_url, token)
        self.progress = Progress()
        self.experiment = getattr(args, "listed", None) or args.experiment  # list EXPERIMENT, or --experiment

    def output(self, data: object, text: str) -> None:
        print(json.dumps(data, indent=2) if self.args.json else text)

    def local_stack(self) -> RunningStack:
        return self.stack or load_stack(self.args.stack_dir)  # load_stack says why there is none

    def nginx_reloader(self, target: str) -> Callable[[], None] | None:
        """Re-render and reload the local stack's NGINX from the registry (local target only)."""
        if target != "local":
            return None
        stack = self.local_stack()
        return lambda: stack.reload_nginx(self.admin.experiments())


def make_target(ctx: Context, image: str = "") -> Target:
    args = ctx.args
    if args.target == "local":
        from croupier.scripts.targets.local import LocalTarget
        # remove works without a running stack too: the pid files stay in its run directory
        run_dir = ctx.stack.run_dir if ctx.stack else args.stack_dir
        return LocalTarget(run_dir, port=getattr(args, "port", None))
    if args.target == "docker":
        from croupier.scripts.targets.docker import DockerTarget, connect
        return DockerTarget(connect(), network=args.network)
    from croupier.scripts.targets.k8s import DEFAULT_IMAGE, K8sTarget, connect as connect_k8s
    core, apps = connect_k8s(args.kube_context)
    return K8sTarget(core, apps, namespace=args.namespace, image=image or DEFAULT_IMAGE)


def variant_of(experiment: dict, variant_id: str) -> dict | None:
    return next((v for v in experiment["variants"] if v["id"] == variant_id), None)


def cmd_list(ctx: Context) -> None:
    stats = ctx.admin.stats(ctx.experiment)
    ctx.output(stats, stats_table(stats))


def template_params(ctx: Context, experiment: dict) -> dict:
    base = ctx.args.from_template or experiment["control"]
    known = variant_of(experiment, base)
    if known is not None:
        if not known.get("params"):
            raise Failed(f"variant {base!r} has no page params in the registry to start from; "
                         f"pass --from-template FILE (a params JSON file)")
        return known["params"]
    return load_template(Path(base))


def cmd_add(ctx: Context) -> None:
    args, exp, vid = ctx.args, ctx.experiment, ctx.args.variant
    experiment = ctx.admin.experiment(exp)  # the API says when the experiment does not exist
    if variant_of(experiment, vid) is not None:
        raise Failed(f"variant {vid!r} already exists in experiment {exp!r}; pick another id")
    params = params_file = None
    if args.from_template is not None:
        changes = PageChanges(
            headline=args.headline, subheadline=args.subheadline, copy=args.copy, copy_style=args.copy_style,
            cta=args.cta, name=args.name, brand=args.brand, badge=args.badge, image=args.image,
            image_alt=args.image_alt, colors={c: getattr(args, c) for c in ("primary", "background", "text",
                                                                            "accent") if getattr(args, c)})
        params = build_params(template_params(ctx, experiment), exp, vid, changes)
        params_file = params_path(exp, vid, args.params_dir)
        if params_file.exists():
            raise Failed(f"{params_file} already exists (from an earlier add?); remove it or pick another id")
    alpha, beta = model_prior(ctx) if args.prior_from_model else prior(args)  # before deploying anything
    reload_nginx = ctx.nginx_reloader(args.target)
    target = make_target(ctx, args.image_ref or "")
    new = NewVariant(VariantSpec(exp, vid, params, params_file, image=args.image_ref or ""), alpha, beta)
    deployment = add_variant(ctx.admin, target, new, ctx.progress, health_timeout=args.health_timeout,
                             reload_nginx=reload_nginx)
    result = {"experiment": exp, "variant": vid, "status": "active", "upstream": deployment.upstream,
              "where": deployment.where, "params_file": str(params_file) if params_file else None,
              "prior_alpha": alpha, "prior_beta": beta}
    ctx.output(result, f"{vid}: active in experiment {exp!r} ({deployment.where}, upstream {deployment.upstream})")


def cmd_create(ctx: Context) -> None:
    """create (croupier.scripts.variant_create)."""
    args = ctx.args
    new = read_declaration(args.declaration, time.time())  # before anything is started
    exp = new.experiment
    ctx.progress.note(f"{args.declaration}: experiment {exp.id!r}, {len(exp.variants)} combinations of "
                      f"{len(exp.factorial.factors)} factors")
    reload_nginx = ctx.nginx_reloader(args.target)
    target = make_target(ctx, args.image_ref or "")
    deployment = create_experiment(ctx.admin, target, new, ctx.progress, image=args.image_ref or "",
                                   health_timeout=args.health_timeout, reload_nginx=reload_nginx)
    result = {"experiment": exp.id, "status": "running", "path_prefix": exp.path_prefix,
              "combinations": len(exp.variants), "upstream": deployment.upstream, "where": deployment.where,
              "declaration": str(args.declaration)}
    ctx.output(result, f"{exp.id}: running at {exp.path_prefix}, {len(exp.variants)} combinations "
                       f"({deployment.where}, upstream {deployment.upstream})")


def model_prior(ctx: Context) -> tuple[float, float]:
    """The prior the experiment's trained model suggests; the API says when there is no model."""
    strength = ctx.args.prior_weight or DEFAULT_MODEL_PRIOR_WEIGHT
    found = ctx.admin.model_prior(ctx.experiment, strength)
    ctx.progress.note(f"prior from the model (version {found['version']}): rate {found['rate']:.2%} "
                      f"worth {found['weight']:.0f} visitors")
    return found["prior_alpha"], found["prior_beta"]


def set_status(ctx: Context, status: str) -> None:
    vid = ctx.args.variant
    updated = ctx.admin.update_variant(ctx.experiment, vid, {"status": status})
    ctx.output(variant_of(updated, vid), f"{vid}: {status}")


def cmd_remove(ctx: Context) -> None:
    args, exp, vid = ctx.args, ctx.experiment, ctx.args.variant
    # Connect first: once the variant is out of the registry, not being able to stop it is worse.
    reload_nginx = ctx.nginx_reloader(args.target) if ctx.stack else None
    target = make_target(ctx)
    ctx.progress.step(f"removing {vid!r} from experiment {exp!r}")
    ctx.admin.remove_variant(exp, vid)
    if reload_nginx is not None:
        ctx.progress.step("reloading NGINX")
        reload_nginx()
    stopped = target.undeploy(exp, vid, ctx.progress)
    generated = params_path(exp, vid, args.params_dir)
    if generated.exists():
        generated.unlink()
        stopped.append(f"deleted {generated}")
    ctx.output({"experiment": exp, "removed": vid, "stopped": stopped},
               f"{vid}: removed from experiment {exp!r}" + (f"; {', '.join(stopped)}" if stopped else
                                                            "; nothing of this script's ran for it"))


def cmd_promote(ctx: Context) -> None:
    exp, vid = ctx.experiment, ctx.args.variant
    if not ctx.args.yes:
        print(f"Promote {vid!r}: every visitor of experiment {exp!r} gets it from now on, and the experiment "
              f"ends. Continue? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise Failed("not promoted (answer y, or pass --yes)")
    updated = ctx.admin.promote(exp, vid)
    ctx.output({"experiment": exp, "status": updated["status"], "winner": updated["winner"]},
               f"{vid}: promoted; experiment {exp!r} has ended, all traffic goes to {vid!r}")


def cmd_level(ctx: Context) -> None:
    """add-level and remove-level (croupier.scripts.variant_levels)."""
    args, exp = ctx.args, ctx.experiment
    adding = args.command == "add-level"
    change = LevelChange(exp, args.factor, args.level, load_fragment(args.params) if adding else None)
    changed = change_level(ctx.admin, change, ctx.progress, declaration=args.declaration)
    result = {"experiment": exp, "factor": args.factor, ("added" if adding else "removed"): args.level,
              "levels": list(changed.to_dict()["factors"][args.factor]), "combinations": len(changed.variants),
              "declaration": str(args.declaration) if args.declaration else None}
    ctx.output(result, f"{args.factor}: level {args.level!r} {'added to' if adding else 'removed from'} experiment "
                       f"{exp!r}; {len(changed.variants)} combinations")


COMMANDS = {"list": cmd_list, "add-level": cmd_level, "remove-level": cmd_level, "add": cmd_add, "create": cmd_create,
            "remove": cmd_remove, "promote": cmd_promote,
            "pause": lambda ctx: set_status(ctx, "paused"), "resume": lambda ctx: set_status(ctx, "active")}


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.command == "add":
        check_add_usage(args, cli.error)
    if args.command == "create":
        check_create_usage(args, cli.error)
    ctx = Context(args, dict(os.environ) if environ is None else environ)
    try:
        COMMANDS[args.command](ctx)
    except (Failed, *FAILURES) as exc:
        message = str(exc)
        if args.json:
            print(json.dumps({"error": message}))
        print(f"croupier-variant: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("croupier-variant: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
