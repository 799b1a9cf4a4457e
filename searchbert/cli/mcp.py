"""`searchbert mcp`: the index served to AI agents over the Model Context Protocol."""

from __future__ import annotations

from ..errors import SearchbertError
from . import index_option, main, reports_errors


@main.command("mcp")
@index_option
@reports_errors
def mcp_cmd(index_path: str | None) -> None:
    """Serve an index to AI agents over the Model Context Protocol (stdio).

    \b
    Tools: search(query, k, mode, filters, rerank) and get_document(id, start_line, end_line).
    Needs the mcp extra: pip install 'searchbert[mcp]'. Point your client at it, e.g.:
      {"mcpServers": {"docs": {"command": "searchbert", "args": ["mcp", "--index", "/abs/path/to/index"]}}}
    """
    from ..index import Index, locate_index

    try:
        from ..integrations.mcp import serve
    except ImportError as exc:
        raise SearchbertError(f"searchbert mcp needs the mcp extra: pip install 'searchbert[mcp]' ({exc})") from exc
    path = locate_index(index_path)
    Index.open(path).close()  # a missing or unreadable index is said now, not on the first tool call
    serve(path)
