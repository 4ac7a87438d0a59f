# fish completion for qstat (qspool): see __qspool_complete.fish
__qspool_complete qstat
