"""Adapters that make searchbert the retriever of RAG frameworks, each in its own module behind an extra:

- `searchbert.integrations.langchain` (extra `langchain`): SearchbertRetriever, SearchbertVectorStore
- `searchbert.integrations.llama_index` (extra `llama-index`): SearchbertRetriever
- `searchbert.integrations.haystack` (extra `haystack`): SearchbertRetriever
- `searchbert mcp` (extra `mcp`): a Model Context Protocol server (searchbert.integrations.mcp)

Importing this package imports no framework; each module imports only its own.
"""
