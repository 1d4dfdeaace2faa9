"""Dev-set retrieval sweep (a development aid; `paperchat eval` is the real harness)."""
import json, sys
from pathlib import Path
from rag.settings import Settings
from rag.embeddings import LocalEmbeddings
from rag.index import PaperIndex
from rag.retrieve import HybridRetriever
from rag.corpus import normalize_title
from rag.types import Turn

s = Settings(data_dir=Path('/tmp/pc'), db_dir=Path('/tmp/pc/db'))
idx = PaperIndex(s, LocalEmbeddings(), create=False)
sets = {n: [json.loads(l) for l in open(f'evals/sets/{n}.jsonl')] for n in ('dev', 'dev_hard')}
weights = [float(x) for x in sys.argv[1:]] or [0.0, 0.2, 0.3, 0.4, 0.5]
for mode in ['dense', 'lexical'] + [f'hybrid:{w}' for w in weights]:
    out = []
    for name, qs in sets.items():
        r5 = mrr = n = 0
        for q in qs:
            if not q['gold_titles']:
                continue
            m = mode.split(':')[0]
            if ':' in mode:
                s.retrieval.lexical_weight = float(mode.split(':')[1])
            ret = HybridRetriever(idx, s.retrieval).retrieve(
                q['question'], [Turn(**t) for t in q.get('history', [])], k=20, mode=m)
            titles = [normalize_title(h.paper.title) for h in ret.hits]
            gold = {normalize_title(t) for t in q['gold_titles']}
            r5 += len(gold & set(titles[:5])) / len(gold)
            rank = next((i + 1 for i, t in enumerate(titles) if t in gold), None)
            mrr += 1 / rank if rank else 0
            n += 1
            if '-v' in sys.argv[0:1] and rank != 1:
                print('  miss', q['id'], rank)
        out.append(f'{name}: R@5 {r5/n:.3f} MRR {mrr/n:.3f}')
    print(f'{mode:14s}', ' | '.join(out))
