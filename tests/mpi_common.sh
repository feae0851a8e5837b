# mpi_common.sh: what the tests under mpirun share (sourced after cli_common.sh by
# mpi_eval_test.sh and mpi_train_test.sh): Open MPI allowed to run as root (the container runs
# as root), one thread per process (several processes on however few cores the machine has), and
# no leak checks in the sanitizer build: Open MPI's plugins keep allocations to the end of the
# process (seen by LeakSanitizer as leaks in unloaded modules, which no suppression can name);
# the same code is leak-checked in one process by the other tests. Address and
# undefined-behaviour checks stay on.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
