"""txtai's BM25 with a candidate selection that costs what matched, not the index size.

txtai's `Terms.candidates` picks the top `limit * 5` scores with `np.argpartition` over the score
array of every chunk in the index. Most of that array is zero (chunks holding no query term), yet the
partition walks all of it: at 1M chunks that one call is ~91% of a keyword search. `Terms` below
selects among the nonzero scores only. Results are those of txtai up to the order of exactly tied
scores, with one deliberate difference: when fewer chunks than `topn` hold a rare query term,
txtai pads the candidates with arbitrary zero-score chunks, which the query's common terms (in
more than 10% of the index) can then score; here the candidates are the matching chunks alone.

rag.index writes `scoring.method: rag.scoring.BM25` into the config it opens an index with (txtai
resolves a scoring class by its dotted path) and keeps `bm25` in the saved config.json.
"""

import numpy as np
from txtai.scoring.bm25 import BM25 as TxtaiBM25
from txtai.scoring.terms import Terms as TxtaiTerms

METHOD = "rag.scoring.BM25"


class Terms(TxtaiTerms):
    """txtai's term index with `candidates` selecting among nonzero scores, and `merge` matching
    the candidates in a common term's postings with numpy (txtai loops over them in Python: ~4 ms
    a hybrid search at 100k chunks, holding the GIL that parallel searches need)."""

    def merge(self, scores, matches, hasscores, terms):
        for term, freq in terms.items():
            uids, weights = self.weights(term)
            if uids is None:
                continue
            if hasscores:  # only the candidates' entries of the postings
                uids, weights = among(uids, weights, matches)
            scores[uids] += freq * weights
        scores[self.deletes] = 0

    def candidates(self, scores, topn):
        if topn >= len(scores):  # every chunk is a candidate: as txtai does
            return super().candidates(scores, topn)
        scores[self.deletes] = 0
        matched = np.flatnonzero(scores)
        if len(matched) <= topn:
            return matched
        return matched[np.argpartition(scores[matched], -topn)[-topn:]]


def among(uids: np.ndarray, weights: np.ndarray, matches: np.ndarray):
    """The entries of a term's postings (sorted uids and their weights) whose uid is in matches."""
    indices = np.searchsorted(uids, matches)
    inside = indices < len(uids)
    indices = indices[inside][uids[indices[inside]] == matches[inside]]
    return uids[indices], weights[indices]


class BM25(TxtaiBM25):
    """txtai's BM25 on the Terms above (every Terms txtai creates for it is ours)."""

    @property
    def terms(self):
        return self.__dict__.get("terms")

    @terms.setter
    def terms(self, value):
        if type(value) is TxtaiTerms:  # created, not yet loaded: same arguments, our class
            value = Terms(value.config, value.score, value.idf)
        self.__dict__["terms"] = value
