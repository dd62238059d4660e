"""Commands that train: ``train``, ``train-baseline``."""

from __future__ import annotations

import argparse
from pathlib import Path

from msgfusion.cli.common import CommandAdder, int_list, positive_int
from msgfusion.errors import MsgFusionError


def cmd_train(args: argparse.Namespace) -> int:
    from msgfusion.train.experiment import ExperimentConfig, ship, train_msgfusion

    try:
        config = ExperimentConfig.from_file(args.config) if args.config else ExperimentConfig()
    except (OSError, ValueError) as exc:
        raise MsgFusionError(f"{args.config}: cannot read the training config: {exc}") from None
    if args.cv:
        from msgfusion.train.cv import cross_validate, summarise

        if args.ship:
            raise MsgFusionError("--cv trains networks for scoring only; --ship takes a run "
                                 "without --cv")
        table = cross_validate(config, args.data, args.out, k=args.cv, seeds=args.seeds,
                               every=args.cv_every)
        for name, summary in summarise(table).items():
            cells = ", ".join(f"{m} {s['mean']:.4g} +- {s['sd']:.2g} (rank {s['rank']:.0f})"
                              for m, s in summary.items() if m != "score")
            print(f"{name}: {cells}; margin over average/max {summary['score']['mean']:+.4f}")
        print(f"wrote {table}")
        return 0
    weights = train_msgfusion(config, args.data, args.out, resume=not args.restart)
    print(f"wrote {weights} (log: {Path(args.out) / 'log.csv'})")
    if args.ship:
        for path in ship(args.out):
            print(f"shipped {path}")
    return 0


def cmd_train_baseline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from msgfusion.train.baselines import get_recipe, train_baseline

    recipe = get_recipe(args.name)
    train = replace(recipe.train, epochs=args.epochs) if args.epochs else recipe.train
    weights = train_baseline(args.name, args.data, args.out, train, resume=not args.restart,
                             ship=args.ship)
    shipped = " and shipped it in the package" if args.ship else ""
    print(f"wrote {weights}{shipped} (log: {Path(args.out) / 'log.csv'})")
    return 0


def add_commands(command: CommandAdder) -> None:
    p = command("train", cmd_train, "train the MsgFusion network on the train split of the atlas "
                                    "data (seeded; resumes from OUT/checkpoint.pt)")
    p.add_argument("--config", metavar="FILE",
                   help="JSON or TOML with optional sections model, loss, train, pairs "
                        "(default: the config of the shipped lite weights' defaults)")
    p.add_argument("--data", default="../shared/data/aanlib",
                   help="the AANLIB tree <pair>/train/ (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run folder: config.json, log.csv, checkpoint.pt, msgfusion.pt")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out")
    p.add_argument("--cv", type=positive_int, metavar="K",
                   help="K-fold cross-validation by atlas case on the train split instead of "
                        "one run: per pair type, fold and seed, a network trained on the other "
                        "folds and scored on its fold beside the classical methods (OUT/cv.csv; "
                        "the test split is not read)")
    p.add_argument("--seeds", type=int_list, metavar="S,S",
                   help="with --cv: the seeds of each fold (default: the config's seed)")
    p.add_argument("--cv-every", type=positive_int, default=5, metavar="N",
                   help="with --cv: score every N-th epoch and the last (default: %(default)s)")
    p.add_argument("--ship", action="store_true",
                   help="copy the trained weights, config and log into the package "
                        "(src/msgfusion/model/weights/msgfusion_lite.*): the shipped default")

    p = command("train-baseline", cmd_train_baseline,
                "train one of the deep baselines (ifcnn, nestfuse, fusiondn, fusiongan, "
                "funfusean) on the train split of the atlas data (seeded; resumes from "
                "OUT/checkpoint.pt)")
    p.add_argument("name", metavar="NAME", help="the baseline's method name")
    p.add_argument("--data", default="../shared/data/aanlib",
                   help="the AANLIB tree <pair>/train/ (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run folder: config.json, log.csv, checkpoint.pt, NAME.pt, NAME.json")
    p.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out")
    p.add_argument("--ship", action="store_true",
                   help="copy the weights, NAME.json and the log into the package's weights "
                        "folder (src/msgfusion/methods/deep/weights/)")
