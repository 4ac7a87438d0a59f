# fish completion for qsub (qspool): see __qspool_complete.fish
__qspool_complete qsub
