# fish completion for qdlq (qspool): see __qspool_complete.fish
__qspool_complete qdlq
