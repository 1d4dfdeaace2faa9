"""Writes the arXiv API cassettes the tests replay (run: python tests/cassettes/write_arxiv_cassettes.py).

No response here was recorded from the network: each is written from the Atom format the
arXiv API documents (API User's Manual, "Details of Atom Results Returned"): a feed with
opensearch:totalResults / startIndex / itemsPerPage and one <entry> per paper carrying id,
published, updated, title, summary, author/name, arxiv:doi, arxiv:journal_ref, links and
categories. The request URLs are the ones the `arxiv` client builds.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import yaml

API = "https://export.arxiv.org/api/query"
HERE = Path(__file__).parent

PAPERS = [
    {
        "id": "2501.03895v1",
        "published": "2025-01-07T16:03:14Z",
        "title": "LLaVA-Mini: Efficient Image and Video Large Multimodal Models with\n  One Vision Token",
        "summary": "Real-time large multimodal models put every image through hundreds of vision\n"
        "tokens, which makes them slow. We compress each image into a single vision token\n"
        "after fusing visual information into the text tokens early in the model. The\n"
        "resulting model matches its larger counterpart on eleven image benchmarks while\n"
        "using 77% fewer FLOPs.",
        "authors": ["Shaolei Zhang", "Qingkai Fang", "Zhe Yang", "Yang Feng"],
        "doi": "",
        "journal_ref": "",
        "category": "cs.CV",
    },
    {
        "id": "2402.01234v2",
        "published": "2024-02-02T09:00:00Z",
        "title": "Counting Sparse Beetles with Phone Cameras",
        "summary": "We count beetles in field photographs taken with phone cameras. A detector\n"
        "trained on synthetic swarms reaches 91% counting accuracy on the BeetleSet benchmark\n"
        "and runs on the phone itself.",
        "authors": ["Ana Garc\u00eda", "J\u00f6rg M\u00fcller"],
        "doi": "10.5555/beetles.2024.7",
        "journal_ref": "Journal of Field Entomology 12 (2024) 1-9",
        "category": "cs.CV",
    },
    {
        "id": "2403.05678v1",
        "published": "2024-03-09T12:30:00Z",
        "title": "Forecasting Ocean Waves with Recurrent Buoy Networks",
        "summary": "We forecast ocean wave heights from buoy readings with a recurrent network.\n"
        "Forecasts improve by 12% on the WaveBench data over physical models.",
        "authors": ["Piet van der Berg"],
        "doi": "",
        "journal_ref": "",
        "category": "physics.ao-ph",
    },
]


def entry(p: dict[str, object]) -> str:
    authors = "".join(f"<author><name>{escape(str(a))}</name></author>" for a in p["authors"])  # type: ignore[attr-defined]
    doi = (
        f'<arxiv:doi>{p["doi"]}</arxiv:doi><link title="doi" href="http://dx.doi.org/{p["doi"]}" rel="related"/>'
        if p["doi"]
        else ""
    )
    journal = f"<arxiv:journal_ref>{escape(str(p['journal_ref']))}</arxiv:journal_ref>" if p["journal_ref"] else ""
    return (
        f"<entry><id>http://arxiv.org/abs/{p['id']}</id><updated>{p['published']}</updated>"
        f"<published>{p['published']}</published><title>{escape(str(p['title']))}</title>"
        f"<summary>{escape(str(p['summary']))}</summary>{authors}{doi}{journal}"
        f'<link href="http://arxiv.org/abs/{p["id"]}" rel="alternate" type="text/html"/>'
        f'<link title="pdf" href="http://arxiv.org/pdf/{p["id"]}" rel="related" type="application/pdf"/>'
        f'<arxiv:primary_category term="{p["category"]}" scheme="http://arxiv.org/schemas/atom"/>'
        f'<category term="{p["category"]}" scheme="http://arxiv.org/schemas/atom"/></entry>'
    )


def feed(papers: list[dict[str, object]], total: int, start: int) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">'
        '<link href="http://arxiv.org/api/query" rel="self" type="application/atom+xml"/>'
        '<title type="html">ArXiv Query</title><id>http://arxiv.org/api/cassette</id>'
        "<updated>2025-01-10T00:00:00-05:00</updated>"
        f"<opensearch:totalResults>{total}</opensearch:totalResults>"
        f"<opensearch:startIndex>{start}</opensearch:startIndex>"
        f"<opensearch:itemsPerPage>{len(papers)}</opensearch:itemsPerPage>"
        + "".join(entry(p) for p in papers)
        + "</feed>\n"
    )


def interaction(args: dict[str, str], body: str, status: int = 200) -> dict[str, object]:
    return {
        "request": {"body": None, "headers": {}, "method": "GET", "uri": f"{API}?{urlencode(args)}"},
        "response": {
            "status": {"code": status, "message": "OK" if status == 200 else "Bad Request"},
            "headers": {"Content-Type": ["application/atom+xml; charset=utf-8"]},
            "body": {"string": body},
        },
    }


def query_args(query: str, start: int, page: int) -> dict[str, str]:
    return {"search_query": query, "id_list": "", "sortBy": "relevance",
            "sortOrder": "descending", "start": str(start), "max_results": str(page)}


def ids_args(ids: list[str], page: int) -> dict[str, str]:
    return {"search_query": "", "id_list": ",".join(ids), "sortBy": "relevance",
            "sortOrder": "descending", "start": "0", "max_results": str(page)}


def write(name: str, interactions: list[dict[str, object]]) -> None:
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True, width=1000)
    (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    # A query for three papers, and the same query resumed after its first paper.
    write("arxiv_query.yaml", [
        interaction(query_args("all:vision AND all:tokens", 0, 3), feed(PAPERS, 3, 0)),
        interaction(query_args("all:vision AND all:tokens", 1, 3), feed(PAPERS[1:], 3, 1)),
    ])
    # Two ids, one of which arXiv does not know: the feed has only the other.
    write("arxiv_ids.yaml", [
        interaction(ids_args(["2402.01234", "2409.99999"], 2), feed([PAPERS[1]], 1, 0)),
    ])
    # arXiv answers a malformed id list with HTTP 400 and an error feed.
    write("arxiv_bad_request.yaml", [
        interaction(ids_args(["2402.01234"], 1), feed([], 0, 0), status=400),
    ])
    write("arxiv_empty.yaml", [
        interaction(query_args("ti:nosuchpaperanywhere", 0, 5), feed([], 0, 0)),
    ])
