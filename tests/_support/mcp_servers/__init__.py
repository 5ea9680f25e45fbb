"""Real MCP servers that the MCP tests start: `calc` over stdio, SSE and Streamable HTTP."""
