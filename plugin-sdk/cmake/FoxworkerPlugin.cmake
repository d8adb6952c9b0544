# foxworker_add_plugin(<name> SOURCES <files...>)
#
# Builds a foxworker handler plugin as a shared object named
# libfoxworker_<name>.so: hidden visibility (only the two ABI functions are
# exported), no undefined symbols, linked against nothing of foxworker's.
function(foxworker_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Foxworker::PluginSDK)
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME "foxworker_${name}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(NOT APPLE)
    target_link_options(${name} PRIVATE "LINKER:--no-undefined")
  endif()
endfunction()
