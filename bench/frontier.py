"""The accuracy/latency frontier: every kept model measured the same way on this machine, and the
single-thread latency of untrained candidate architectures, so the trade-off is in view and not
just the winner.

    python -m bench.frontier               # the kept models (about a minute)
    python -m bench.frontier --candidates  # also the candidate architectures (needs TensorFlow, minutes)
    python -m bench.frontier --blocks      # also where the shipped network's time goes, block by block
    python -m bench.frontier --runtimes    # also the shipped file under each of LiteRT's kernel sets

Kept models are the shipped baseline (``classifier.cards.BASELINE_DIR``) and the previous
baselines in ``models/`` (``infra.bootstrap.PREVIOUS_BASELINES_DIR``), which bootstrap registers so a
stack can roll back to them. For each: top-1 on the test zip through LiteRT, the lowest class,
ECE on the held-out half (the half the temperature was not fitted on), one image on one thread
(p50, after warm-up), the ``.tflite`` size, and the Keras/LiteRT agreement the card measured at
export. Latencies are measured in turns (``bench.model.interleaved_latency_ms``), so models
compared in one table saw the same machine.

Candidates are untrained networks of ``classifier.training.network`` exported as float32,
dynamic-range (int8 weights) and full int8 (weights and activations, calibrated on random
images): latency depends on the graph, not on the weights, so this is how an architecture is
measured before anyone spends a GPU on training it. Each is timed in turns with the shipped
``.tflite``, and its ratio to it is printed: the ratio survives a machine that drifts.

The block profile cuts a trained network after each block and times the prefixes in turns: the
differences say where one image's time goes, beside each block's multiply-adds.

The runtimes compare the shipped ``.tflite`` under the interpreter serving builds (LiteRT's default
delegates: XNNPACK) with LiteRT's own optimised kernels alone, in turns, and check that both
answer the same classes.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np

from bench.model import BASELINE, cpu_description, interleaved_latency_ms
from infra.bootstrap import kept_models
from infra.devdata import SHARED_DATA

TEST_DATA = SHARED_DATA / "cifar10-test.zip"
BASELINE_KERAS = BASELINE / "model.keras"
CANDIDATES = (  # widths, stem
    ((32, 64, 192, 192), "conv"),  # the first baselines' shipped network
    ((32, 64, 256, 256), "conv"),  # the first baseline
    ((24, 64, 256, 240), "whiten"),  # HyperParameters.airbench: airbench94's, last block cut to 240
    ((24, 64, 256, 256), "whiten"),  # airbench94's own
    ((24, 64, 192, 192), "whiten"),  # airbench94's stem and block 1, narrower after: 82M MACs
    ((32, 64, 176, 176), "conv"),  # the shipped network narrowed to about 95M multiply-adds
    ((32, 64, 160, 160), "conv"),  # narrowed to 86M, under 3 ms at 30 us per million on AVX2
    ((64, 128, 256, 256), "conv"),
    ((64, 128, 256, 512), "conv"),
    ((64, 256, 256, 256), "conv"),
    ((96, 192, 384, 384), "conv"),
)
CANDIDATE_QUANTIZATIONS = ("float32", "dynamic", "int8")
SHIPPED = "shipped"  # the name the shipped .tflite is timed under beside each candidate
# many short rounds for the block profile: neighbouring prefixes are timed a fraction of a second apart
BLOCK_ROUNDS = 60
BLOCK_RUNS = 10
# LiteRT's kernel sets, by the op resolver an interpreter is built with (None: what serving uses)
RUNTIMES = {"xnnpack (served)": None, "builtin kernels": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}
RUNTIME_ROUNDS = 30


def measure_kept(directories: list[Path], test) -> list[dict]:
    from classifier.cards import read_card
    from classifier.evaluation import expected_calibration_error, metrics, predict_batched
    from classifier.litert import TFLiteModel

    rows, predicts = [], {}
    for directory in directories:
        card = read_card(directory)
        content = (directory / "model.tflite").read_bytes()
        probabilities = predict_batched(
            TFLiteModel(content, num_threads=os.cpu_count() or 1).predict, test.images
        )
        figures = metrics(probabilities, test.labels)
        held_out = np.arange(1, len(test.labels), 2)
        rows.append(
            {
                "version": card["version"],
                "accuracy": figures["accuracy"],
                "lowest_class": min(figures["per_class"].items(), key=lambda item: item[1]),
                "ece_held_out": expected_calibration_error(probabilities[held_out], test.labels[held_out]),
                "megabytes": len(content) / 1e6,
                "parameters": card.get("parameters"),
                "keras_agreement": card.get("keras_top1_agreement"),
            }
        )
        predicts[card["version"]] = TFLiteModel(content, num_threads=1).predict
    latencies = interleaved_latency_ms(predicts)
    for row in rows:
        row.update(latencies[row["version"]])
    return rows


def multiply_adds(model) -> int:
    """Multiply-accumulates of one image through the conv and dense layers."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            height, width, out_channels = layer.output.shape[1:]
            kh, kw, in_channels, _ = layer.kernel.shape
            total += height * width * out_channels * kh * kw * in_channels
        elif kind == "Dense":
            total += int(np.prod(layer.kernel.shape))
    return int(total)


def measure_candidates() -> list[dict]:
    from classifier.litert import TFLiteModel
    from classifier.training.export import to_tflite
    from classifier.training.network import ACTIVATIONS, make_model

    shipped = TFLiteModel.from_path(BASELINE / "model.tflite", num_threads=1).predict
    rng = np.random.default_rng(1)
    calibration = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    rows = []
    for widths, stem in CANDIDATES:
        for activation in ACTIVATIONS:
            model = make_model(widths, activation=activation, stem=stem)
            # random kernels: an identity-initialised one is all zeros and ones, which the
            # converter stores in less space than any trained kernel needs
            for layer in model.layers:
                if hasattr(layer, "kernel"):
                    layer.kernel.assign(rng.normal(0, 0.05, layer.kernel.shape).astype("float32"))
            row = {
                "widths": "/".join(map(str, widths)),
                "stem": stem,
                "activation": activation,
                "parameters": int(model.count_params()),
                "mmacs": multiply_adds(model) / 1e6,
            }
            contents = {q: to_tflite(model, q, calibration) for q in CANDIDATE_QUANTIZATIONS}
            predicts = {q: TFLiteModel(content, num_threads=1).predict for q, content in contents.items()}
            latencies = interleaved_latency_ms({**predicts, SHIPPED: shipped})
            for quantization, content in contents.items():
                row[quantization] = {**latencies[quantization], "megabytes": len(content) / 1e6}
            row["dynamic_to_shipped"] = latencies["dynamic"]["p50_ms"] / latencies[SHIPPED]["p50_ms"]
            rows.append(row)
            print(_candidate_line(row), flush=True)
    return rows


def _candidate_line(row: dict) -> str:
    cells = "".join(f" {row[q]['p50_ms']:>8.2f} {row[q]['megabytes']:>6.2f}" for q in CANDIDATE_QUANTIZATIONS)
    return (
        f"{row['widths']:<16} {row['stem']:<6} {row['activation']:<5} {row['parameters'] / 1e6:>6.2f} "
        f"{row['mmacs']:>6.0f}{cells} {row['dynamic_to_shipped']:>8.2f}x"
    )


def block_cuts(model) -> list:
    """(name, model) for ``model`` cut after each block's activation, then whole: prefixes whose
    latencies, differenced, say what each block costs."""
    import keras

    from classifier.training.network import ACTIVATIONS

    ends = tuple(f"_{activation}" for activation in ACTIVATIONS)
    names = [layer.name for layer in model.layers if layer.name.endswith(ends)]
    cuts = [(name, keras.Model(model.input, model.get_layer(name).output)) for name in names]
    return [*cuts, ("head", model)]


def profile_blocks(path: Path) -> list[dict]:
    """Each block's multiply-adds and one-image latency on one thread, as a dynamic-range
    ``.tflite`` (the served quantisation), from prefixes timed in turns."""
    import keras

    from ai_edge_litert.interpreter import Interpreter

    from classifier.training.export import to_tflite

    cuts = block_cuts(keras.models.load_model(path))
    predicts, mmacs = {}, {}
    for name, cut in cuts:
        # a prefix's output is a feature map, not probabilities: the bare interpreter, not TFLiteModel
        interpreter = Interpreter(model_content=to_tflite(cut, "dynamic"), num_threads=1)
        interpreter.allocate_tensors()
        predicts[name] = _invoker(interpreter)
        mmacs[name] = multiply_adds(cut) / 1e6
    # a block's cost: the median over rounds of the difference between neighbouring prefixes
    latencies = interleaved_latency_ms(predicts, rounds=BLOCK_ROUNDS, runs=BLOCK_RUNS)
    rows, before = [], None
    for name, _ in cuts:
        rounds = np.array(latencies[name]["rounds_ms"])
        row = {"block": name, "mmacs": mmacs[name], **latencies[name], "ms": float(np.median(rounds))}
        if before is not None:
            row["mmacs"] -= mmacs[before]
            row["ms"] = float(np.median(rounds - np.array(latencies[before]["rounds_ms"])))
        rows.append(row)
        before = name
    return rows


def measure_runtimes(path: Path, images: np.ndarray, rounds: int = RUNTIME_ROUNDS) -> list[dict]:
    """One image on one thread through ``path`` under each of :data:`RUNTIMES`, timed in turns, and
    how often each one's top-1 on ``images`` equals the served runtime's."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = Path(path).read_bytes()
    interpreters = {}
    for name, resolver in RUNTIMES.items():
        options = {} if resolver is None else {"experimental_op_resolver_type": OpResolverType[resolver]}
        interpreters[name] = Interpreter(model_content=content, num_threads=1, **options)
        interpreters[name].allocate_tensors()
    top1 = {name: _top1(interpreter, images) for name, interpreter in interpreters.items()}
    served = next(iter(RUNTIMES))
    latencies = interleaved_latency_ms(
        {name: _invoker(interpreter) for name, interpreter in interpreters.items()}, rounds=rounds
    )
    return [
        {"runtime": name, **latencies[name], "top1_agreement": float(np.mean(top1[name] == top1[served]))}
        for name in RUNTIMES
    ]


def _top1(interpreter, images: np.ndarray) -> np.ndarray:
    """Each image's class, one at a time (the interpreter stays at batch 1 for the timing)."""
    predict = _invoker(interpreter)
    output = interpreter.get_output_details()[0]["index"]
    classes = []
    for image in images:
        predict(image[None])
        classes.append(int(np.argmax(interpreter.get_tensor(output))))
    return np.array(classes)


def _invoker(interpreter):
    index = interpreter.get_input_details()[0]["index"]

    def predict(images: np.ndarray) -> None:
        interpreter.set_tensor(index, images)
        interpreter.invoke()

    return predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--candidates", action="store_true", help="also time untrained candidate architectures"
    )
    parser.add_argument(
        "--blocks",
        type=Path,
        nargs="?",
        const=BASELINE_KERAS,
        help="also time a Keras model block by block (default: the shipped one)",
    )
    parser.add_argument(
        "--runtimes", action="store_true", help="also time the shipped .tflite under each LiteRT kernel set"
    )
    parser.add_argument("--data", type=Path, default=TEST_DATA, help="the test zip")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    from classifier.datasets import load_dataset

    test = load_dataset(args.data, "test")  # nosec B615  # classifier.datasets, not Hugging Face
    print(f"\nKept models on {args.data.name} ({len(test)} images); one thread on {cpu_description()}")
    print(
        f"{'version':<24} {'top-1':>6} {'lowest class':>17} {'ECE':>6} {'p50 ms':>7} {'MB':>5}"
        f" {'params':>6} {'Keras agree':>11}"
    )
    kept = measure_kept(kept_models(), test)
    for row in sorted(kept, key=lambda row: row["p50_ms"]):
        name, accuracy = row["lowest_class"]
        agreement = f"{row['keras_agreement']:.2%}" if row["keras_agreement"] is not None else "-"
        print(
            f"{row['version']:<24} {row['accuracy']:>6.2%} {f'{name} {accuracy:.1%}':>17}"
            f" {row['ece_held_out']:>6.3f} {row['p50_ms']:>7.2f} {row['megabytes']:>5.2f}"
            f" {row['parameters'] / 1e6:>5.2f}M {agreement:>11}"
        )
    figures = {"cpu": cpu_description(), "kept": kept}
    if args.candidates:
        print("\nUntrained candidates, one image on one thread: p50 ms and .tflite MB per quantisation")
        header = "".join(f" {q:>15}" for q in CANDIDATE_QUANTIZATIONS)
        print(f"{'widths':<16} {'stem':<6} {'act':<5} {'params':>6} {'MMACs':>6}{header} {'dynamic':>9}")
        print(f"{'':<16} {'':<6} {'':<5} {'':>6} {'':>6}{' ' * len(header)} {'/shipped':>9}")
        figures["candidates"] = measure_candidates()
    if args.blocks:
        print(f"\nWhere one image's time goes: {args.blocks}, dynamic-range .tflite cut after each block")
        print(f"{'after':<16} {'MMACs':>6} {'ms':>6} {'us per MMAC':>12} {'p50 ms so far (spread)':>24}")
        figures["blocks"] = profile_blocks(args.blocks)
        for row in figures["blocks"]:
            low, high = row["spread_ms"]
            per_mmac = f"{1000 * row['ms'] / row['mmacs']:.0f}" if row["mmacs"] >= 1 else "-"
            so_far = f"{row['p50_ms']:.2f} ({low:.2f}-{high:.2f})"
            print(f"{row['block']:<16} {row['mmacs']:>6.1f} {row['ms']:>6.2f} {per_mmac:>12} {so_far:>24}")
    if args.runtimes:
        print(f"\nThe shipped .tflite under each of LiteRT's kernel sets ({RUNTIME_ROUNDS} rounds in turns)")
        print(f"{'runtime':<18} {'p50 ms':>7} {'spread':>12} {'same top-1 as served':>21}")
        figures["runtimes"] = measure_runtimes(BASELINE / "model.tflite", test.images[::5])
        for row in figures["runtimes"]:
            low, high = row["spread_ms"]
            print(
                f"{row['runtime']:<18} {row['p50_ms']:>7.2f} {f'{low:.2f}-{high:.2f}':>12}"
                f" {row['top1_agreement']:>21.2%}"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
