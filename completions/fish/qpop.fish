# fish completion for qpop (qspool): see __qspool_complete.fish
__qspool_complete qpop
