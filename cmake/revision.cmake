# revision.cmake: writes OUTPUT, a header defining ADVTRAIN_REVISION as `git describe --always
# --dirty` of SOURCE_DIR (empty outside a git checkout). Run at every build, so a report names the
# revision it was built from; the file is rewritten only when the revision changed, so nothing else
# is rebuilt.
execute_process(COMMAND git describe --always --dirty WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE revision OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set(text "#define ADVTRAIN_REVISION \"${revision}\"\n")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUTPUT} "${text}")
endif()
