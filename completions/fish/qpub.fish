# fish completion for qpub (qspool): see __qspool_complete.fish
__qspool_complete qpub
