# fish completion for qbridge (qspool): see __qspool_complete.fish
__qspool_complete qbridge
