"""`searchbert pull` and `searchbert finetune`: models fetched ahead, and adapted to your data."""

from __future__ import annotations

import click

from . import (
    display_path,
    main,
    reports_errors,
)


@main.command("pull")
@click.argument("model")
@click.option("--revision", help="A branch, tag or commit of the model (default: main).")
@reports_errors
def pull_cmd(model: str, revision: str | None) -> None:
    """Fetch a model from the Hugging Face hub into its cache, ahead of first use.

    \b
    A named model is otherwise fetched when first used (--model, --rerank-model); pull does it now:
      searchbert pull sentence-transformers/all-mpnet-base-v2
    The default model ships with searchbert and needs nothing fetched.
    """
    from ..hub import pull

    folder, fetched = pull(model, revision)
    click.echo(f"{'Fetched' if fetched else 'Already here:'} {model} -> {folder}")


@main.command("distill")
@click.argument("output", type=click.Path())
@click.option("--base", help="Model to distil (folder or hub id). Default: the bundled all-MiniLM-L6-v2.")
@click.option("--dimensions", default=256, show_default=True, type=click.IntRange(8), help="Vector size (PCA).")
@reports_errors
def distill_cmd(output: str, base: str | None, dimensions: int) -> None:
    """Make a static embedding model (model2vec) from a sentence-transformers model, offline, in seconds.

    \b
    Every word piece of the model's vocabulary is embedded once; a text's vector is then the mean of its pieces'
    vectors: tens of times faster to index on a CPU, at a cost in quality (see the README's table):
      searchbert distill models/minilm-static
      searchbert index ./docs --model models/minilm-static
    """
    from pathlib import Path

    from ..static_encoder import distill

    click.echo(f"Distilled into {display_path(str(distill(Path(output), base, dimensions)))}")


@main.group("finetune")
def finetune_group() -> None:
    """Adapt a model to your own data (needs the finetune extra: pip install 'searchbert[finetune]')."""


general_option = click.option(
    "--general",
    type=click.Path(exists=True, file_okay=False),
    help="A BEIR folder of your own (its test split) to stand for everything else, instead of the shipped probe.",
)


@finetune_group.command("encoder")
@click.argument("data", type=click.Path(exists=True))
@click.option("--output", "-o", required=True, type=click.Path(), help="New folder for the fine-tuned model.")
@click.option("--base", help="Model to start from (folder or hub id). Default: the bundled all-MiniLM-L6-v2.")
@click.option("--split", default="train", show_default=True, help="A BEIR folder's qrels split to train on.")
@click.option(
    "--epochs", default=3, show_default=True, help="Passes over the pairs; the best on held-out queries is kept."
)
@click.option("--batch-size", default=16, show_default=True, help="Pairs per step (more: more in-batch negatives).")
@click.option("--learning-rate", default=2e-5, show_default=True)
@click.option(
    "--dev-share",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of the queries held out to choose the epoch and the blend.",
)
@click.option("--seed", default=42, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1, mps... Default: a GPU if there is one.")
@click.option(
    "--blend",
    default="auto",
    show_default=True,
    help="The fine-tuned weights' share in the saved model (0 to 1), the rest the base model's, so it keeps what it "
    "knew. auto: measured at 0, 0.25, 0.5, 0.75 and 1 on the held-out queries and on a general probe shipped with "
    "searchbert; kept: the best on the held-out queries among the shares below the first that loses over 0.5 "
    "nDCG@10 on the probe.",
)
@general_option
@reports_errors
def finetune_encoder_cmd(
    data: str,
    output: str,
    base: str | None,
    split: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    dev_share: float,
    seed: int,
    device: str | None,
    blend: str,
    general: str | None,
) -> None:
    """Fine-tune the bi-encoder on (query, relevant passage) pairs.

    \b
    DATA: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv), or a JSONL file with one
    {"query": ..., "positive": ..., "negatives": [...]} per line (negatives optional: hard ones are mined).
    The output folder is a Sentence-Transformers model:
      searchbert finetune encoder ../shared/datasets/scifact -o models/scifact
      searchbert index ./docs --model models/scifact --rebuild
    """
    from ..finetune import finetune_encoder

    report = finetune_encoder(
        data, output, base=base, split=split, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        dev_share=dev_share, seed=seed, device=device, blend=blend, general=general,
    )  # fmt: skip
    change = ""
    if report.dev_before and report.dev_after:
        change = (
            f"; held-out nDCG@10 {report.dev_before['ndcg@10'] * 100:.2f} -> {report.dev_after['ndcg@10'] * 100:.2f}"
            f" (epoch {report.best_epoch} of {report.epochs})"
        )
    general_change = ""
    if report.general_curve:
        at = report.general_curve[f"{report.blend:g}"] * 100
        general_change = f"; general probe {report.general_curve['0'] * 100:.2f} -> {at:.2f}"
    how = "chosen by measurement" if report.blend_chosen == "auto" else "as asked"
    click.echo(
        f"Fine-tuned {report.base} on {report.pairs} pairs ({report.train_queries} queries, {report.dev_queries} held "
        f"out) in {report.seconds:.0f} s{change}{general_change}; kept {report.blend:g} of the fine-tuned weights "
        f"({how}).\nSaved to {display_path(report.output)} (with finetune.json and finetune.png). Use it: "
        f"searchbert index FOLDER --model {display_path(report.output)} --rebuild"
    )


@finetune_group.command("reranker")
@click.argument("data", type=click.Path(exists=True))
@click.option("--output", "-o", required=True, type=click.Path(), help="New folder for the reranker.")
@click.option("--base", help="BERT-style model to start from (folder or hub id). Default: the bundled MiniLM.")
@click.option(
    "--retriever",
    help="Bi-encoder whose search the reranker will rerank (folder or hub id; default: the bundled model).",
)
@click.option(
    "--mode",
    type=click.Choice(["dense", "bm25", "hybrid"]),
    default="hybrid",
    show_default=True,
    help="The search the reranker will rerank.",
)
@click.option("--split", default="train", show_default=True, help="A BEIR folder's qrels split to train on.")
@click.option("--candidates", default=50, show_default=True, help="Passages reranked per query (as with --rerank).")
@click.option("--negatives", default=3, show_default=True, help="Hard negatives per pair, from those candidates.")
@click.option(
    "--epochs", default=3, show_default=True, help="Passes over the pairs; the best on held-out queries is kept."
)
@click.option("--batch-size", default=8, show_default=True, help="Pairs per step.")
@click.option("--learning-rate", default=3e-5, show_default=True)
@click.option("--max-length", default=256, show_default=True, help="Word pieces read per query + passage.")
@click.option("--dev-share", default=0.1, show_default=True, help="Share of the queries held out to choose by.")
@click.option("--seed", default=42, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1, mps... Default: a GPU if there is one.")
@general_option
@reports_errors
def finetune_reranker_cmd(data: str, output: str, **options: object) -> None:
    """Train a BERT cross-encoder to rerank your search, on (query, relevant passage) pairs.

    \b
    DATA as for `finetune encoder`. Negatives are drawn from what the search finds (--retriever, --mode), and
    held-out queries decide how much of the search's own score to keep: the reranker is used only where it
    beats the search it reranks, and only as much as costs nothing on the general probe shipped with searchbert
    (its queries searched by --retriever, then reranked): a reranker that helps your folder and hurts other text
    is kept closer to the search.
      searchbert finetune reranker ../shared/datasets/scifact -o models/scifact-reranker
      searchbert query "..." --rerank --rerank-model models/scifact-reranker
    """
    from ..finetune_reranker import finetune_reranker

    report = finetune_reranker(data, output, **options)  # type: ignore[arg-type]
    dev = report.dev
    click.echo(
        f"Trained a reranker from {report.base} on {report.pairs} pairs ({report.train_queries} queries, "
        f"{report.dev_queries} held out) in {report.seconds:.0f} s.\nHeld-out nDCG@10 ({report.mode} search, top "
        f"{report.settings['candidates']}): search {dev.retrieval * 100:.2f}, reranker alone {dev.reranker * 100:.2f}, "
        f"blended {dev.combined * 100:.2f} (retrieval weight {dev.weight:.1f}, epoch {report.best_epoch})."
    )
    if report.general_curve:
        probe, kept = report.general_curve, report.general_curve[f"{dev.weight:g}"]
        click.echo(f"General probe nDCG@10: search {probe['1'] * 100:.2f}, at that weight {kept * 100:.2f}.")
    if not report.used:
        click.echo(
            "It did not beat the search on the held-out queries: --rerank with it keeps the search's order. "
            "More pairs, more --epochs or a --base closer to your data may help."
        )
    click.echo(
        f"Saved to {display_path(report.output)}. Use it: searchbert query QUERY --rerank --rerank-model "
        f"{display_path(report.output)}"
    )
