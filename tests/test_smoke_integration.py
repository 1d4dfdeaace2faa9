import pytest

pytestmark = pytest.mark.integration


def test_known_answer_cites_the_paper(assistant) -> None:  # type: ignore[no-untyped-def]
    answer = assistant.ask("What NDCG scores did SeqDialN achieve on VisDial v1.0?")
    assert not answer.abstained
    assert answer.citations[0].title.startswith("SeqDialN")
    assert "[1]" in answer.text
