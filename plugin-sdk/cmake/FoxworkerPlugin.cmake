# foxworker_add_plugin(<name> SOURCES <files...>
#                      [DESTINATION <dir>] [NO_INSTALL] [EXPORTS <symbols...>])
#
# Builds a foxworker handler plugin as a shared object named
# libfoxworker_<name>.so: hidden visibility, no undefined symbols, linked
# against nothing of foxworker's, and (on ELF platforms) a linker version
# script so that its only dynamic symbols are the two ABI functions,
# foxworker_plugin_magic and foxworker_plugin_init_v1. EXPORTS adds more
# names (version-script globs such as test_hook_* allowed), for test hooks.
#
# It installs the plugin, mode 0755, into DESTINATION, by default
# ${FOXWORKER_PLUGIN_INSTALL_DIR} (a cache variable, default
# ${CMAKE_INSTALL_LIBDIR}/foxworker/plugins). A relative directory is under
# the plugin project's own CMAKE_INSTALL_PREFIX, not the SDK's. NO_INSTALL
# builds without installing; so does the variable FOXWORKER_PLUGIN_INSTALL
# set to OFF, for calls without DESTINATION. To install where a foxworkerd
# from the SDK's prefix looks, pass DESTINATION ${FOXWORKER_SDK_PLUGIN_DIR}
# (set by find_package).
include_guard(GLOBAL)
include(GNUInstallDirs)

set(FOXWORKER_PLUGIN_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/foxworker/plugins" CACHE STRING
    "Where foxworker_add_plugin() installs plugins (relative: under CMAKE_INSTALL_PREFIX)")
# The includer (the SDK's CMakeLists.txt or its package config) names the
# export map; a global property, as plugins are added from any directory.
set_property(GLOBAL PROPERTY FOXWORKER_PLUGIN_EXPORT_MAP "${FOXWORKER_PLUGIN_EXPORT_MAP}")

function(foxworker_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "DESTINATION" "SOURCES;EXPORTS" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "foxworker_add_plugin(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Foxworker::PluginSDK)
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME "foxworker_${name}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)

  if(NOT APPLE AND NOT WIN32)
    target_link_options(${name} PRIVATE "LINKER:--no-undefined")
    get_property(map GLOBAL PROPERTY FOXWORKER_PLUGIN_EXPORT_MAP)
    if(ARG_EXPORTS)
      # Copied only when it changes, so a reconfigure does not relink.
      list(JOIN ARG_EXPORTS ";\n    " extra)
      set(map ${CMAKE_CURRENT_BINARY_DIR}/foxworker_${name}-exports.map)
      file(WRITE ${map}.new "{\n  global:\n    foxworker_plugin_magic;\n"
                            "    foxworker_plugin_init_v1;\n    ${extra};\n  local:\n    *;\n};\n")
      configure_file(${map}.new ${map} COPYONLY)
    endif()
    target_link_options(${name} PRIVATE "LINKER:--version-script=${map}")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${map})
  endif()

  if(ARG_NO_INSTALL)
    return()
  endif()
  if(NOT ARG_DESTINATION)
    if(DEFINED FOXWORKER_PLUGIN_INSTALL AND NOT FOXWORKER_PLUGIN_INSTALL)
      return()
    endif()
    set(ARG_DESTINATION ${FOXWORKER_PLUGIN_INSTALL_DIR})
  endif()
  # Explicit: CMake installs shared objects 0644 on Debian (CMAKE_INSTALL_SO_NO_EXE).
  install(TARGETS ${name} LIBRARY DESTINATION ${ARG_DESTINATION}
          PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                      WORLD_READ WORLD_EXECUTE)
endfunction()
