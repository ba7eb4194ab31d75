"""Train the spike-train → DIC network on a training data set and save weights with their record.

Splits the data by target into training, validation (model selection, uncertainty calibration) and
test sets, trains with AdamW, and writes OUT.eqx (weights) and OUT.json (architecture,
standardisation, data size, seed, time and test metrics). --init fine-tunes a trained network (the
DA network starts from the STG one).

Example (the shipped weights):
  neuromech train-network data/stg --model stg --epochs 16 --out src/neuromech/dics/weights/stg
  neuromech train-network data/da --model da --init stg --epochs 20 --learning-rate 5e-4 \\
      --out src/neuromech/dics/weights/da
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "train-network"
HELP = "train the spike-train → DIC network on generated training data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, nargs="+", metavar="DIR",
                        help="training data folder(s) made by neuromech training-data")
    parser.add_argument("--model", required=True, choices=["stg", "da"], help="the neuron model")
    parser.add_argument("--init", default=None, help="fine-tune this network ('stg', 'da' or a .json path)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT", help="weights stem (writes OUT.eqx, OUT.json)")


def run(args) -> int:
    from ..dics import TrainingConfig, load_network, save_network, train_dic_network
    from ..jobs import read_training_data

    frame = read_training_data(args.data)
    init = load_network(args.init) if args.init else None
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed)
    net, record = train_dic_network(frame, model=args.model, config=config, init=init)
    record["command"] = (f"neuromech {NAME} {' '.join(map(str, args.data))} --model {args.model}" + (f" --init {args.init}" if args.init else "")
                         + f" --epochs {args.epochs} --learning-rate {args.learning_rate} --seed {args.seed} --out {args.out}")
    path = save_network(args.out, net.net, net.standardisation, model=args.model, v_th=net.v_th,
                        max_isis=net.max_isis, record=record)
    print(json.dumps(record["test"]["clean"], indent=1), file=sys.stderr)
    print(f"saved {path}", file=sys.stderr)
    return 0
