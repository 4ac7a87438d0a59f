# fish completion for qpush (qspool): see __qspool_complete.fish
__qspool_complete qpush
