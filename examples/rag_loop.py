"""A small RAG loop over corpora/: index the SciFact sample once, then for each question retrieve the best passages
(each with a neighbouring chunk on either side) and print the prompt a language model would be sent.

    .venv/bin/python examples/rag_loop.py                       # the questions below
    .venv/bin/python examples/rag_loop.py "what keeps blood stem cells dormant?" -k 2

No model is called: plug your LLM client in where the prompt is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from searchbert import Index, SearchOptions

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "corpora" / "scifact-sample"
QUESTIONS = [
    "Which transcription factor keeps blood stem cells dormant?",
    "How common is blindness worldwide?",
]
TEMPLATE = """Answer the question from the sources below. Cite a source by its number; say so if they do not answer it.

{sources}

Question: {question}
Answer:"""


def prompt(index: Index, question: str, k: int) -> str:
    """The prompt for one question: the k best passages, each with its source file and lines."""
    hits = index.search(question, options=SearchOptions(k=k, mode="hybrid", context=1))
    sources = "\n\n".join(
        f"[{n}] {Path(h.path).name}, lines {h.context_start_line}-{h.context_end_line}:\n{h.context.strip()}"
        for n, h in enumerate(hits, start=1)
    )
    return TEMPLATE.format(sources=sources, question=question)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="*", default=QUESTIONS)
    parser.add_argument("-k", type=int, default=3, help="passages per question")
    parser.add_argument("--index", default=str(HERE.parent / "indexes" / "rag-example"), help="index folder")
    args = parser.parse_args()

    path = Path(args.index)
    index = Index.open(path) if (path / "manifest.json").exists() else Index.create(path)
    with index:
        index.add([CORPUS])  # the first run embeds the corpus; later runs find nothing changed
        for question in args.questions:
            print(prompt(index, question, args.k))
            print("=" * 80)


if __name__ == "__main__":
    main()
