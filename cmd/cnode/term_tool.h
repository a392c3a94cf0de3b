/* term_tool.h: `cnode term decode|hash|sort|compare|choose`: hex-encoded external-format terms on stdin, one per
 * line, answered the way the BEAM would (printing, erlang:phash2, term order, Horde's placement). No node is
 * started. */
#ifndef CNODE_TERM_TOOL_H
#define CNODE_TERM_TOOL_H

/* argv[0] is "term". Returns the exit status: 0, 1 (out of memory, write error) or 2 (usage, bad input). */
int term_tool_main(int argc, char **argv);

#endif
